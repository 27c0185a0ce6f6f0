"""``asr enroll``, ``asr adapt`` and ``asr profile``: a person's own voice.

Also the ``--profile``/``--profiles-dir`` flags that ``asr transcribe`` and ``asr eval``
share (:func:`add_profile_flags`, :func:`profile_checkpoint`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from asr.cli.common import HelpFormatter, default_lm

PROFILES_DIR_HELP = "profiles folder (default: $ASR_PROFILES, else $XDG_DATA_HOME/lstm-asr/profiles)"


def add_profile_flags(p: argparse.ArgumentParser, what: str = "the models") -> None:
    """``--profile NAME`` and ``--profiles-dir DIR``."""
    p.add_argument(
        "--profile",
        default=None,
        metavar="NAME",
        help=f"use speaker profile NAME's adapted models instead of {what} (asr enroll, asr adapt)",
    )
    p.add_argument("--profiles-dir", default=None, metavar="DIR", help=PROFILES_DIR_HELP)


def _store(args: argparse.Namespace) -> Any:
    from asr.profiles import ProfileStore

    return ProfileStore(args.profiles_dir)


def _checked(name: str) -> str:
    from asr.profiles import validate_profile_name

    return validate_profile_name(name)


def profile_checkpoint(args: argparse.Namespace, model: str) -> str:
    """``model`` (streaming/stream/offline) of ``args.profile``, or ``model`` itself without one.

    Raises:
        ValueError: unknown or unadapted profile, malformed name, or a checkpoint path given
            together with a profile.
    """
    if args.profile is None:
        return model
    from asr.profiles import ProfileNotFound

    kind = {"streaming": "streaming", "stream": "streaming", "offline": "offline"}.get(model)
    if kind is None:
        raise ValueError(f"expected --model streaming or offline with --profile, got {model!r}")
    try:
        streaming, offline = _store(args).adapted_models(_checked(args.profile))
    except ProfileNotFound as e:
        raise ValueError(str(e)) from None
    return str(streaming if kind == "streaming" else offline)


# ------------------------------------------------------------------ enroll
def _ask(question: str) -> str:
    """A line from the terminal, lower-cased; "q" at end of input."""
    try:
        return input(question).strip().lower()
    except EOFError:
        return "q"


class _ConsoleUI:
    """Prompts on the terminal; Enter starts and stops each take."""

    def show_prompt(self, number: int, total: int, minutes: float, target: float, text: str) -> bool:
        print(f"\n[{number} of about {total}]  {minutes:.1f} of {target:g} minutes recorded")
        print(f"\n    {text}\n")
        answer = _ask("Enter: start recording (q: stop for now) ")
        if answer == "q":
            return False
        print("recording... read the sentence, then press Enter")
        return True

    def refused(self, problems: list[str]) -> str:
        print("take refused: " + "; ".join(problems))
        answer = _ask("r: re-take (default), s: skip this prompt, q: stop for now ")
        return {"s": "skip", "q": "quit"}.get(answer[:1], "retake")

    def kept(self, entry: dict[str, Any]) -> None:
        print(f"kept ({entry['duration']:.1f} s)")


def _enroll(args: argparse.Namespace) -> int:
    from asr.enroll import MicRecorder, check_minutes, import_recordings, run_enrollment

    store = _store(args)
    name = _checked(args.name)
    if args.source is not None:
        report = import_recordings(store, name, args.source, check=not args.no_checks)
        for where, reason in report.failed:
            print(f"FAILED {where}: {reason}", file=sys.stderr)
        total = store.minutes(name)
        print(
            f"profile {name}: imported {len(report.added)} takes ({report.minutes:.1f} min), "
            f"{len(report.failed)} failed; {total:.1f} min in all ({store.path(name)})"
        )
        return 0 if report.added else 1
    if not sys.stdin.isatty():
        raise ValueError("--mic needs an interactive terminal: Enter starts and stops each take")
    warning = check_minutes(args.minutes)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    recorder = MicRecorder(wait_for_stop=lambda: _ask(""), device=args.device)
    done = store.minutes(name) if store.exists(name) else 0.0
    if done:
        print(f"profile {name}: resuming at {done:.1f} minutes")
    result = run_enrollment(store, name, recorder, _ConsoleUI(), args.minutes)
    state = "done" if result.finished else "stopped (run the same command to resume)"
    print(f"\nprofile {name}: {result.recorded} takes this time, {result.minutes:.1f} min in all; {state}")
    if result.finished:
        print(f"next: asr adapt {name}")
    return 0


def _register_enroll(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "enroll",
        help="record or import a person's voice into a speaker profile",
        description=(
            "Fill speaker profile NAME with takes and their transcripts. --mic shows one prompt at a "
            "time (training-text sentences) and records it; each take is checked (too quiet, clipped, "
            "mostly silence, too short or long for its text) and can be re-taken; a stopped "
            "enrollment resumes where it stopped. --from imports a JSONL manifest (audio_filepath and "
            "text a line) or a folder of audio files with same-named .txt transcripts; a bad file is "
            "reported and the rest are imported (exit 1 only when none was). Then run asr adapt NAME."
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument("name", metavar="NAME", help="profile name (letters, digits, _ and -)")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--mic", action="store_true", help="read prompts into the microphone")
    how.add_argument("--from", dest="source", metavar="MANIFEST|DIR", help="import existing recordings")
    p.add_argument(
        "--minutes", type=float, default=10.0, help="--mic: minutes of takes to reach (2 at least)"
    )
    p.add_argument("--device", default=None, help="--mic: input device (sounddevice name or index)")
    p.add_argument(
        "--no-checks", action="store_true", help="--from: import takes without the level/silence checks"
    )
    p.add_argument("--profiles-dir", default=None, metavar="DIR", help=PROFILES_DIR_HELP)
    p.set_defaults(func=_enroll)


# ------------------------------------------------------------------ adapt
def _adapt(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from asr.adapt import AdaptConfig, AdaptProgress, adapt_profile, format_report
    from asr.profiles import ProfileNotFound

    config = AdaptConfig(
        steps=args.steps,
        lr=args.lr,
        kl_weight=args.kl_weight,
        train_layers=args.train_layers,
        time_budget_s=args.time_budget,
        speeds=tuple(args.speeds),
        threads=args.threads,
        base_streaming=args.streaming_model,
        base_offline=args.offline_model,
        lm=None if args.no_lm else args.lm,
    )
    bar = tqdm(total=config.steps * len(config.kinds), unit="step", disable=args.quiet, file=sys.stderr)
    offsets = {kind: i * config.steps for i, kind in enumerate(config.kinds)}

    def progress(p: AdaptProgress) -> None:
        bar.n = offsets[p.kind] + p.step
        cer = "" if p.heldout_cer is None else f" held-out CER {100 * p.heldout_cer:.1f}%"
        loss = "" if p.loss is None else f" loss {p.loss:.3f}"
        eta = f"{int(p.eta_s) // 60}m{int(p.eta_s) % 60:02d}s"
        bar.set_description(f"{p.kind} {p.phase}")
        bar.set_postfix_str(f"{loss}{cer} ETA {eta}".strip(), refresh=False)
        bar.refresh()

    try:
        report = adapt_profile(_store(args), _checked(args.name), config, progress)
    except ProfileNotFound as e:
        raise ValueError(str(e)) from None
    finally:
        bar.close()
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(format_report(report))
    return 0


# asr.adapt's AdaptConfig defaults (not imported here: it loads torch; a test pins them equal).
ADAPT_DEFAULTS = {
    "steps": 120,
    "lr": 3e-4,
    "kl_weight": 0.0,
    "train_layers": "all",
    "time_budget_s": 270.0,
    "speeds": (),
    "base_streaming": "streaming",
    "base_offline": "offline",
}


def _register_adapt(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = argparse.Namespace(**ADAPT_DEFAULTS)
    p = sub.add_parser(
        "adapt",
        help="fine-tune both models on a speaker profile's takes",
        description=(
            "Fine-tune the streaming and the offline model on profile NAME's takes. A slice of the "
            "takes is held out for early stopping and for the before/after figures (greedy CER/WER "
            "and WER with the LM), printed at the end and kept in the profile's card. The adapted "
            "checkpoints go into the profile; use them with --profile NAME."
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument("name", metavar="NAME", help="profile name")
    p.add_argument("--steps", type=int, default=d.steps, help="most fine-tuning steps per model")
    p.add_argument("--lr", type=float, default=d.lr, help="learning rate")
    p.add_argument(
        "--kl-weight", type=float, default=d.kl_weight, help="weight of a KL term to the base model (0: off)"
    )
    p.add_argument(
        "--train-layers",
        choices=["all", "proj", "proj+lstm1"],
        default=d.train_layers,
        help="which weights adapt",
    )
    p.add_argument(
        "--time-budget", type=float, default=d.time_budget_s, help="seconds of training per model at most"
    )
    p.add_argument(
        "--speeds",
        type=float,
        nargs="*",
        default=list(d.speeds),
        metavar="F",
        help="speed perturbation: train on each take resampled to these speeds (e.g. 0.9 1.0 1.1; none: off)",
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--streaming-model", default=d.base_streaming, help="streaming model to start from")
    p.add_argument("--offline-model", default=d.base_offline, help="offline model to start from")
    p.add_argument("--lm", default=default_lm(), help="language model folder (held-out WER with the LM)")
    p.add_argument("--no-lm", action="store_true", help="report greedy figures only")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--profiles-dir", default=None, metavar="DIR", help=PROFILES_DIR_HELP)
    p.set_defaults(func=_adapt)


# ------------------------------------------------------------------ profile
def _summary_line(info: Any) -> str:
    models = {m["kind"]: m for m in info.card.get("adaptation", {}).get("models", [])}
    offline = models.get("offline")
    figures = ""
    if offline and offline["before"].get("wer_lm") is not None:
        figures = (
            f"  held-out WER with LM (offline) {100 * offline['before']['wer_lm']:.1f}% -> "
            f"{100 * offline['after']['wer_lm']:.1f}%"
        )
    state = "adapted" if info.adapted else "not adapted"
    return f"{info.name:<20} {info.recordings:>5} takes {info.minutes:6.1f} min  {state}{figures}"


def _profile(args: argparse.Namespace) -> int:
    from asr.profiles import ProfileNotFound

    store = _store(args)
    try:
        if args.profile_command == "list":
            infos = [store.info(n) for n in store.names()]
            if args.json:
                print(json.dumps([i.to_dict() for i in infos]))
            elif not infos:
                print(f"no profiles in {store.root}")
            else:
                for info in infos:
                    print(_summary_line(info))
            return 0
        name = _checked(args.name)
        if args.profile_command == "show":
            info = store.info(name)
            if args.json:
                print(json.dumps(info.to_dict()))
                return 0
            print(f"{_summary_line(info)}\nfolder: {info.path}")
            adaptation = info.card.get("adaptation")
            if adaptation:
                from asr.adapt import format_report, report_from_dict

                print(format_report(report_from_dict(adaptation)))
            return 0
        path = store.path(name)
        if not store.exists(name):
            raise ProfileNotFound(name, store.root)
        if not args.yes:
            if not sys.stdin.isatty():
                raise ValueError(f"refusing to delete {path} without --yes")
            if input(f"delete profile {name} ({path})? [y/N] ").strip().lower() != "y":
                print("kept")
                return 1
        store.delete(name)
        print(f"deleted profile {name}")
        return 0
    except ProfileNotFound as e:
        raise ValueError(str(e)) from None


def _register_profile(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "profile",
        help="list, show or delete speaker profiles",
        description="Speaker profiles: enrollment takes, adapted models and their before/after card.",
        formatter_class=HelpFormatter,
    )
    psub = p.add_subparsers(dest="profile_command", required=True, metavar="ACTION")
    listing = psub.add_parser("list", help="every profile, its minutes of takes and whether it is adapted")
    listing.add_argument("--json", action="store_true", help="one JSON array")
    show = psub.add_parser("show", help="one profile: takes, models and the before/after figures")
    show.add_argument("name", metavar="NAME")
    show.add_argument("--json", action="store_true", help="one JSON object")
    delete = psub.add_parser("delete", help="remove a profile with its takes and models")
    delete.add_argument("name", metavar="NAME")
    delete.add_argument("--yes", action="store_true", help="do not ask")
    for q in (listing, show, delete):
        q.add_argument("--profiles-dir", default=None, metavar="DIR", help=PROFILES_DIR_HELP)
        q.set_defaults(func=_profile)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_enroll(sub)
    _register_adapt(sub)
    _register_profile(sub)
