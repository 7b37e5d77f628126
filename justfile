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

# Format and lint as CI does.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

# Everything CI runs, on this machine.
ci:
    bash .ci/run
