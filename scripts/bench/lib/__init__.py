"""The bench harness: what the benchmark scripts share, one module per job.

paths (where the repository, build/ and the reports are), workload (what the benchmarks ask),
machine (the CPU, how busy it is, its memory bandwidth, an env's size), fresh_process (one
measurement in a fresh process), stats (medians, spreads, percentiles), sections (rewriting a
marked section of BENCHMARKS.md or FIDELITY.md), ports (a free loopback port), server (a server
process on a free port, ready), chat_stream (a streamed chat completion, timed).

server and chat_stream need httpx (the runtime venv), machine needs numpy (every venv but the
llama.cpp ones); workload is stdlib-only: bench_workers imports it in every engine's venv.
"""
