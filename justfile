# Everyday recipes. `cargo install just` if you do not have it; every recipe is a plain cargo
# command you can also type yourself.

# List the recipes.
default:
    @just --list

# The whole test suite (needs a running Docker; see README).
test *ARGS:
    cargo test --workspace --locked {{ARGS}}

# The console (TUI or a command), with an embedded agent when none answers on 127.0.0.1:7070.
run *ARGS:
    cargo run --release -p berth-console -- {{ARGS}}

# An agent on loopback, as a daemon would run it.
agent *ARGS:
    cargo run --release -p berth-agent --bin berthd -- {{ARGS}}

# A static berthd in a FROM scratch image, tagged berth/berthd:<version> and :latest or TAGS.
image *TAGS:
    bash packaging/image.sh {{TAGS}}

# Format and lint as CI does.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

# Everything CI runs, on this machine.
ci:
    bash .ci/run

# Benchmarks, each figure against its baseline (bench/README.md). `just bench` runs them all
# (about 15 minutes on 2 cores) and writes bench/results/<date>.md and .json; `just bench NAME`
# runs one: run-latency, ps, logs, follow, footprint, scale, console, services, hollow-services.
# Flags follow the name:
# `just bench ps --ps-rounds 20` (`just bench all --help` lists them).
bench NAME="all" *ARGS:
    cargo build --release --locked -p berth-agent -p berth-console -p berth-bench
    @if [ "{{NAME}}" = all ] || [ "{{NAME}}" = console ]; then cargo bench --locked -p berth-console --bench frame --no-run; fi
    cargo run --release --locked -p berth-bench -- {{NAME}} {{ARGS}}
