"""`python -m chatbot.embedded.llm_server`: serve a GGUF model on /v1/chat/completions
until SIGTERM or SIGINT. Run as its own process because llama.cpp holds the GIL-free
server threads and its memory apart from the supervisor."""

from __future__ import annotations

import argparse
import signal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--alias", action="append", default=[])
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--ctx", type=int, default=8192)
    # Sampling defaults for requests that do not set them (the OpenAI API has no such
    # fields): small models loop without a repeat penalty; DRY stops longer repeats.
    parser.add_argument("--repeat-penalty", type=float, default=1.0)
    parser.add_argument("--dry-multiplier", type=float, default=0.0)
    args = parser.parse_args()

    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.model_alias = set(args.alias) or {"local"}
    params.port = args.port
    params.hostnames = [args.host]
    params.n_parallel = args.parallel
    params.n_ctx = args.ctx
    params.sampling.penalty_repeat = args.repeat_penalty
    params.sampling.dry_multiplier = args.dry_multiplier
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    server = xllamacpp.Server(params)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    del server


if __name__ == "__main__":
    main()
