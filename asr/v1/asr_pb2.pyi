from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AudioEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENCODING_UNSPECIFIED: _ClassVar[AudioEncoding]
    LINEAR16: _ClassVar[AudioEncoding]
    MULAW: _ClassVar[AudioEncoding]
    ALAW: _ClassVar[AudioEncoding]
    WAV: _ClassVar[AudioEncoding]
    FLAC: _ClassVar[AudioEncoding]

class SpeechEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPEECH_EVENT_UNSPECIFIED: _ClassVar[SpeechEventType]
    SPEECH_START: _ClassVar[SpeechEventType]
    SPEECH_END: _ClassVar[SpeechEventType]
    END_OF_SINGLE_UTTERANCE: _ClassVar[SpeechEventType]
    INITIAL_SILENCE_TIMEOUT: _ClassVar[SpeechEventType]
ENCODING_UNSPECIFIED: AudioEncoding
LINEAR16: AudioEncoding
MULAW: AudioEncoding
ALAW: AudioEncoding
WAV: AudioEncoding
FLAC: AudioEncoding
SPEECH_EVENT_UNSPECIFIED: SpeechEventType
SPEECH_START: SpeechEventType
SPEECH_END: SpeechEventType
END_OF_SINGLE_UTTERANCE: SpeechEventType
INITIAL_SILENCE_TIMEOUT: SpeechEventType

class SpeechContext(_message.Message):
    __slots__ = ("phrases", "boost")
    PHRASES_FIELD_NUMBER: _ClassVar[int]
    BOOST_FIELD_NUMBER: _ClassVar[int]
    phrases: _containers.RepeatedScalarFieldContainer[str]
    boost: float
    def __init__(self, phrases: _Optional[_Iterable[str]] = ..., boost: _Optional[float] = ...) -> None: ...

class EndpointingConfig(_message.Message):
    __slots__ = ("trailing_silence_ms", "max_utterance_ms", "initial_silence_timeout_ms")
    TRAILING_SILENCE_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_UTTERANCE_MS_FIELD_NUMBER: _ClassVar[int]
    INITIAL_SILENCE_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    trailing_silence_ms: int
    max_utterance_ms: int
    initial_silence_timeout_ms: int
    def __init__(self, trailing_silence_ms: _Optional[int] = ..., max_utterance_ms: _Optional[int] = ..., initial_silence_timeout_ms: _Optional[int] = ...) -> None: ...

class RecognitionConfig(_message.Message):
    __slots__ = ("encoding", "sample_rate_hertz", "model", "max_alternatives", "enable_word_time_offsets", "enable_word_confidence", "speech_contexts", "endpointing", "partial_decoder", "profile")
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HERTZ_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MAX_ALTERNATIVES_FIELD_NUMBER: _ClassVar[int]
    ENABLE_WORD_TIME_OFFSETS_FIELD_NUMBER: _ClassVar[int]
    ENABLE_WORD_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    SPEECH_CONTEXTS_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTING_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_DECODER_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    encoding: AudioEncoding
    sample_rate_hertz: int
    model: str
    max_alternatives: int
    enable_word_time_offsets: bool
    enable_word_confidence: bool
    speech_contexts: _containers.RepeatedCompositeFieldContainer[SpeechContext]
    endpointing: EndpointingConfig
    partial_decoder: str
    profile: str
    def __init__(self, encoding: _Optional[_Union[AudioEncoding, str]] = ..., sample_rate_hertz: _Optional[int] = ..., model: _Optional[str] = ..., max_alternatives: _Optional[int] = ..., enable_word_time_offsets: _Optional[bool] = ..., enable_word_confidence: _Optional[bool] = ..., speech_contexts: _Optional[_Iterable[_Union[SpeechContext, _Mapping]]] = ..., endpointing: _Optional[_Union[EndpointingConfig, _Mapping]] = ..., partial_decoder: _Optional[str] = ..., profile: _Optional[str] = ...) -> None: ...

class StreamingRecognitionConfig(_message.Message):
    __slots__ = ("config", "interim_results", "single_utterance")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    INTERIM_RESULTS_FIELD_NUMBER: _ClassVar[int]
    SINGLE_UTTERANCE_FIELD_NUMBER: _ClassVar[int]
    config: RecognitionConfig
    interim_results: bool
    single_utterance: bool
    def __init__(self, config: _Optional[_Union[RecognitionConfig, _Mapping]] = ..., interim_results: _Optional[bool] = ..., single_utterance: _Optional[bool] = ...) -> None: ...

class StreamingControl(_message.Message):
    __slots__ = ("force_endpoint",)
    FORCE_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    force_endpoint: bool
    def __init__(self, force_endpoint: _Optional[bool] = ...) -> None: ...

class StreamingRecognizeRequest(_message.Message):
    __slots__ = ("streaming_config", "audio_content", "control")
    STREAMING_CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CONTENT_FIELD_NUMBER: _ClassVar[int]
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    streaming_config: StreamingRecognitionConfig
    audio_content: bytes
    control: StreamingControl
    def __init__(self, streaming_config: _Optional[_Union[StreamingRecognitionConfig, _Mapping]] = ..., audio_content: _Optional[bytes] = ..., control: _Optional[_Union[StreamingControl, _Mapping]] = ...) -> None: ...

class WordInfo(_message.Message):
    __slots__ = ("word", "start_time", "end_time", "confidence")
    WORD_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    word: str
    start_time: float
    end_time: float
    confidence: float
    def __init__(self, word: _Optional[str] = ..., start_time: _Optional[float] = ..., end_time: _Optional[float] = ..., confidence: _Optional[float] = ...) -> None: ...

class SpeechRecognitionAlternative(_message.Message):
    __slots__ = ("transcript", "confidence", "words")
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    transcript: str
    confidence: float
    words: _containers.RepeatedCompositeFieldContainer[WordInfo]
    def __init__(self, transcript: _Optional[str] = ..., confidence: _Optional[float] = ..., words: _Optional[_Iterable[_Union[WordInfo, _Mapping]]] = ...) -> None: ...

class StreamingRecognitionResult(_message.Message):
    __slots__ = ("alternatives", "is_final", "stability", "result_start_time", "result_end_time", "utterance_index")
    ALTERNATIVES_FIELD_NUMBER: _ClassVar[int]
    IS_FINAL_FIELD_NUMBER: _ClassVar[int]
    STABILITY_FIELD_NUMBER: _ClassVar[int]
    RESULT_START_TIME_FIELD_NUMBER: _ClassVar[int]
    RESULT_END_TIME_FIELD_NUMBER: _ClassVar[int]
    UTTERANCE_INDEX_FIELD_NUMBER: _ClassVar[int]
    alternatives: _containers.RepeatedCompositeFieldContainer[SpeechRecognitionAlternative]
    is_final: bool
    stability: float
    result_start_time: float
    result_end_time: float
    utterance_index: int
    def __init__(self, alternatives: _Optional[_Iterable[_Union[SpeechRecognitionAlternative, _Mapping]]] = ..., is_final: _Optional[bool] = ..., stability: _Optional[float] = ..., result_start_time: _Optional[float] = ..., result_end_time: _Optional[float] = ..., utterance_index: _Optional[int] = ...) -> None: ...

class SpeechEvent(_message.Message):
    __slots__ = ("type", "time")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    type: SpeechEventType
    time: float
    def __init__(self, type: _Optional[_Union[SpeechEventType, str]] = ..., time: _Optional[float] = ...) -> None: ...

class StreamingRecognizeResponse(_message.Message):
    __slots__ = ("results", "speech_events")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    SPEECH_EVENTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[StreamingRecognitionResult]
    speech_events: _containers.RepeatedCompositeFieldContainer[SpeechEvent]
    def __init__(self, results: _Optional[_Iterable[_Union[StreamingRecognitionResult, _Mapping]]] = ..., speech_events: _Optional[_Iterable[_Union[SpeechEvent, _Mapping]]] = ...) -> None: ...

class RecognizeRequest(_message.Message):
    __slots__ = ("config", "audio_content")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CONTENT_FIELD_NUMBER: _ClassVar[int]
    config: RecognitionConfig
    audio_content: bytes
    def __init__(self, config: _Optional[_Union[RecognitionConfig, _Mapping]] = ..., audio_content: _Optional[bytes] = ...) -> None: ...

class RecognizeResponse(_message.Message):
    __slots__ = ("results", "audio_duration", "processing_seconds")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_DURATION_FIELD_NUMBER: _ClassVar[int]
    PROCESSING_SECONDS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[StreamingRecognitionResult]
    audio_duration: float
    processing_seconds: float
    def __init__(self, results: _Optional[_Iterable[_Union[StreamingRecognitionResult, _Mapping]]] = ..., audio_duration: _Optional[float] = ..., processing_seconds: _Optional[float] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "description", "parameters", "checkpoint", "language_model")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_MODEL_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    parameters: int
    checkpoint: str
    language_model: bool
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., parameters: _Optional[int] = ..., checkpoint: _Optional[str] = ..., language_model: _Optional[bool] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class ListProfilesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ProfileInfo(_message.Message):
    __slots__ = ("name", "adapted", "enrolled_minutes", "loaded")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADAPTED_FIELD_NUMBER: _ClassVar[int]
    ENROLLED_MINUTES_FIELD_NUMBER: _ClassVar[int]
    LOADED_FIELD_NUMBER: _ClassVar[int]
    name: str
    adapted: bool
    enrolled_minutes: float
    loaded: bool
    def __init__(self, name: _Optional[str] = ..., adapted: _Optional[bool] = ..., enrolled_minutes: _Optional[float] = ..., loaded: _Optional[bool] = ...) -> None: ...

class ListProfilesResponse(_message.Message):
    __slots__ = ("profiles", "max_loaded")
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    MAX_LOADED_FIELD_NUMBER: _ClassVar[int]
    profiles: _containers.RepeatedCompositeFieldContainer[ProfileInfo]
    max_loaded: int
    def __init__(self, profiles: _Optional[_Iterable[_Union[ProfileInfo, _Mapping]]] = ..., max_loaded: _Optional[int] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("active_streams", "total_streams", "errors", "audio_seconds", "compute_seconds", "partial_latency_p50_ms", "partial_latency_p95_ms", "last_batch_size", "batches", "batched_chunks", "batch_compute_seconds")
    ACTIVE_STREAMS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STREAMS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_LATENCY_P95_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    BATCHED_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    BATCH_COMPUTE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    active_streams: int
    total_streams: int
    errors: int
    audio_seconds: float
    compute_seconds: float
    partial_latency_p50_ms: float
    partial_latency_p95_ms: float
    last_batch_size: int
    batches: int
    batched_chunks: int
    batch_compute_seconds: float
    def __init__(self, active_streams: _Optional[int] = ..., total_streams: _Optional[int] = ..., errors: _Optional[int] = ..., audio_seconds: _Optional[float] = ..., compute_seconds: _Optional[float] = ..., partial_latency_p50_ms: _Optional[float] = ..., partial_latency_p95_ms: _Optional[float] = ..., last_batch_size: _Optional[int] = ..., batches: _Optional[int] = ..., batched_chunks: _Optional[int] = ..., batch_compute_seconds: _Optional[float] = ...) -> None: ...
