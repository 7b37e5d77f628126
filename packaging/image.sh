#!/usr/bin/env bash
# Builds berthd statically linked and packs it, alone, into a FROM scratch Docker image.
#
#   packaging/image.sh [TAG...]
#
# With no TAG the image is tagged berth/berthd:<berthd's version> and berth/berthd:latest.
# BERTH_IMAGE_PROFILE picks the cargo profile (default release; dev builds faster, for tests).
# Needs cargo, a C compiler, binutils (readelf, strip) and a Docker engine; no network.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  printf 'image.sh: %s\n' "$*" >&2
  exit 1
}

profile=${BERTH_IMAGE_PROFILE:-release}
# The only target installed here; without musl, the static binary is glibc's.
target=x86_64-unknown-linux-gnu
cargo=${CARGO:-cargo}
for tool in "$cargo" docker readelf strip; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"
done

# With an explicit --target, RUSTFLAGS reach berthd and its dependencies only, not build
# scripts or proc macros. The encoded forms would win over RUSTFLAGS, so they go.
unset CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS
printf '==> building berthd (profile %s, static, %s)\n' "$profile" "$target" >&2
binary=$(
  RUSTFLAGS='-C target-feature=+crt-static' "$cargo" build --locked --profile "$profile" \
    -p berth-agent --bin berthd --target "$target" --message-format=json-render-diagnostics |
    sed -n 's/.*"executable":"\([^"]*\/berthd\)".*/\1/p' | tail -n 1
)
[ -n "$binary" ] && [ -x "$binary" ] || die "cargo built no berthd executable"

# scratch has no dynamic loader and no shared library: a binary that needs either cannot start.
if readelf -lW "$binary" | grep -q 'INTERP' || readelf -dW "$binary" | grep -q '(NEEDED)'; then
  readelf -dW "$binary" | grep '(NEEDED)' >&2 || true
  die "$binary is dynamically linked, so it cannot run FROM scratch"
fi

version=$("$binary" --version) || die "$binary --version failed"
version=${version#berthd }
revision=$(git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)
if [ $# -eq 0 ]; then
  set -- "berth/berthd:$version" "berth/berthd:latest"
fi

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp packaging/Dockerfile "$context/Dockerfile"
# The symbol table stays, so a panic's backtrace still names functions; debug info goes (a dev
# build is ten times smaller without it).
strip --strip-debug -o "$context/berthd" "$binary"

tags=()
for tag in "$@"; do tags+=(--tag "$tag"); done
printf '==> building image %s\n' "$*" >&2
docker build --quiet --build-arg "VERSION=$version" --build-arg "REVISION=$revision" \
  "${tags[@]}" "$context" >/dev/null
docker image ls --format '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}' "$1" >&2
