"""Start the fine-tuning studio, or manage its users.

    python app.py [--host 127.0.0.1] [--port 7860] [--workdir workdir] [--auth users.yaml]
                  [--max-upload-mb 200] [--gpus 0,1] [--model-dir DIR ...] [--quota-gib 50]
                  [--allow-remote-code] [--oom-retries 2] [--stall-timeout 600] [--warm-workers]
    python app.py add-user USERS.yaml NAME [--password-stdin]
"""
from __future__ import annotations

import argparse
import getpass
import signal
import sys
from pathlib import Path

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def parse_gpus(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"--gpus: expected GPU indices such as 0,1 (got '{text}')") from None


def serve_args(argv: list[str]) -> argparse.Namespace:
    from trainer_backend.jobs.oom_retry import MAX_OOM_RETRIES

    p = argparse.ArgumentParser(prog="python app.py", description="Start the fine-tuning studio.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--workdir", default="workdir", help="jobs, uploads and exports live here")
    p.add_argument("--auth", default=None, help="users.yaml with salted password hashes (see add-user)")
    p.add_argument("--max-upload-mb", type=int, default=200)
    p.add_argument("--gpus", default=None, help="GPU indices the studio may use, e.g. 0,1 (default: all)")
    p.add_argument("--model-dir", action="append", default=[], metavar="DIR",
                   help="a folder of models users may train and chat from (repeatable)")
    p.add_argument("--quota-gib", type=float, default=50.0,
                   help="disk space per user with --auth (uploads, jobs, exports); quota_gib in the users file overrides it")
    p.add_argument("--allow-remote-code", action="store_true",
                   help="let every user run modeling code shipped with a model (trust_remote_code); "
                        "without it, only users with trust_remote_code: true in the users file may")
    p.add_argument("--oom-retries", type=int, default=2, choices=range(0, MAX_OOM_RETRIES + 1),
                   help="retries of a job that runs out of GPU memory, each with half the micro-batch")
    p.add_argument("--stall-timeout", type=float, default=600.0,
                   help="seconds a starting job may go without any progress before it fails (0 = never)")
    p.add_argument("--warm-workers", action="store_true",
                   help="keep a train process that has done its imports ready on each free GPU: a single-GPU "
                        "job starts about 25 s sooner; each idle one holds ~0.5 GiB of its GPU")
    return p.parse_args(argv)


def add_user(argv: list[str]) -> int:
    from studio.auth import AuthFileError, add_user as write_user

    p = argparse.ArgumentParser(prog="python app.py add-user", description="Add or update a studio user.")
    p.add_argument("users_file")
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
    args = p.parse_args(argv)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"Password for {args.name}: ")
        if password != getpass.getpass("Again: "):
            print("The passwords differ; nothing written.", file=sys.stderr)
            return 2
    try:
        write_user(Path(args.users_file), args.name, password)
    except AuthFileError as err:
        print(err, file=sys.stderr)
        return 2
    print(f"{args.name} written to {args.users_file}")
    return 0


def serve(argv: list[str]) -> int:
    args = serve_args(argv)
    if args.host not in LOOPBACK and not args.auth:
        print(f"Refusing to listen on {args.host} without --auth users.yaml: anyone on the network could "
              "train and read data. Create users with `python app.py add-user users.yaml NAME`.", file=sys.stderr)
        return 2
    from studio.app_factory import build_ui, launch_kwargs, make_context, prepare_workdir
    from studio.auth import AuthFileError, LoginGuard, UsersFile, make_checker
    from studio.context import StudioSettings
    from trainer_backend.jobs import JobError

    try:
        users = UsersFile(Path(args.auth)) if args.auth else None
    except AuthFileError as err:
        print(err, file=sys.stderr)
        return 2
    settings = StudioSettings(workdir=Path(args.workdir).resolve(), max_upload_mb=args.max_upload_mb,
                              gpus=parse_gpus(args.gpus), auth_file=Path(args.auth) if args.auth else None,
                              model_dirs=tuple(Path(d).resolve() for d in args.model_dir),
                              allow_remote_code=args.allow_remote_code, quota_gib=args.quota_gib,
                              oom_retries=args.oom_retries, stall_timeout_s=args.stall_timeout,
                              warm_workers=args.warm_workers)
    prepare_workdir(settings)
    try:
        ctx = make_context(settings, users)
    except JobError as err:  # e.g. a damaged or unreadable job registry: one line naming the file
        print(err, file=sys.stderr)
        return 2
    checker = make_checker(LoginGuard(users)) if users else None
    ctx.runner.start_background()
    demo = build_ui(ctx)
    # A plain `kill` (service managers, test harnesses) must also stop the chat workers: they run
    # in their own sessions and would otherwise outlive the studio, each holding a model.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        demo.queue(default_concurrency_limit=8).launch(server_name=args.host, server_port=args.port,
                                                       **launch_kwargs(ctx, checker))
    finally:
        ctx.chats.stop_all()
        ctx.runner.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["add-user"]:
        return add_user(argv[1:])
    return serve(argv)


if __name__ == "__main__":
    sys.exit(main())
