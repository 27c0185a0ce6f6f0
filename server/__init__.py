"""The gRPC server (installed as ``asr.server``): ``create_server``, ``serve``, ``start_in_thread``."""

from asr.server.app import RunningServer, ServerConfig, create_server, serve, start_in_thread

__all__ = ["RunningServer", "ServerConfig", "create_server", "serve", "start_in_thread"]
