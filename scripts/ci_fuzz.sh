#!/usr/bin/env bash
# CI stage: libFuzzer targets for every parser of outside input (tests/fuzz/, see tests/README.md).
# Builds them with clang (-fsanitize=fuzzer,address,undefined) straight from the sources they need,
# independent of meson, in a folder of its own; replays every saved regression input; then fuzzes each
# target for FUZZ_SECONDS from its committed seed corpus. Any crash, sanitizer report, leak, timeout or
# broken property fails the stage, and the input that caused it is copied to
# tests/fuzz/regressions/<target>/ so that it is replayed on every later run once fixed.
#
#   scripts/ci_fuzz.sh [TARGET...]    FUZZ_SECONDS (30), BUILD_DIR (build-fuzz), JOBS (2), CXX (clang++)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

FUZZ_SECONDS=${FUZZ_SECONDS:-30}
BUILD_DIR=${BUILD_DIR:-build-fuzz}
JOBS=${JOBS:-2}
CXX=${CXX:-clang++}
ALL_TARGETS=(safetensors checkpoint_index config tokenizer options y4m wan_shapes wan_config)
TARGETS=("${ALL_TARGETS[@]}")
(($#)) && TARGETS=("$@")
if ! command -v "$CXX" >/dev/null; then
  echo "ci_fuzz: $CXX not found (Debian: apt-get install clang libclang-rt-14-dev libomp-14-dev)" >&2
  exit 1
fi
mkdir -p "$BUILD_DIR"
B=$(cd "$BUILD_DIR" && pwd)

# ---- build: a generated ninja file, so that rebuilds are incremental and run JOBS compilers ----

t0=$(date +%s)
sanitize="-fsanitize=address,undefined -fno-sanitize-recover=all"
cflags="-std=c++20 -g -O1 -fno-omit-frame-pointer $sanitize -I$root -I$root/include $(pkg-config --cflags fmt)"
av_pkgs="libavcodec libavformat libavutil libswscale"
{
  echo "cflags = $cflags"
  echo "rule cxx"
  echo "  command = $CXX \$cflags \$extra -fsanitize=fuzzer-no-link -MD -MF \$out.d -c \$in -o \$out"
  echo "  depfile = \$out.d"
  echo "  deps = gcc"
  echo "  description = CXX \$out"
  echo "rule ar"
  echo "  command = rm -f \$out && ar crs \$out \$in"
  echo "rule link"
  echo "  command = $CXX \$cflags -fsanitize=fuzzer \$in -o \$out \$libs"
  echo "  description = LINK \$out"
  # archive name, extra compile flags, sources
  lib() {
    local name=$1 extra=$2 objs=()
    shift 2
    for src in "$@"; do
      local obj="obj/${src%.cpp}.o"
      echo "build $obj: cxx $root/$src"
      echo "  extra = $extra"
      objs+=("$obj")
    done
    echo "build lib$name.a: ar ${objs[*]}"
  }
  lib core "" core/*.cpp
  lib wan "-DDS_HAVE_SENTENCEPIECE=1" core/wan/*.cpp
  lib kernels "-fopenmp -ffp-contract=fast -fno-trapping-math -Wno-pass-failed" kernels/registry.cpp kernels/cpu/*.cpp
  lib pipelines "-DDS_MODELS_BUILD_DIR=\\\"$root/models\\\" -DDS_MODELS_INSTALL_DIR=\\\"/nonexistent\\\" -DDS_VERSION=\\\"fuzz\\\"" \
    pipelines/*.cpp
  lib support "" tests/support/random_model.cpp tests/fuzz/fuzz_util.cpp
  lib cli "-I$root/plugin/cli $(pkg-config --cflags $av_pkgs)" \
    plugin/cli/output_file.cpp plugin/cli/y4m_writer.cpp plugin/cli/yuv.cpp
  # target, its archives (dependents first), extra libraries
  target() {
    echo "build obj/fuzz_$1.o: cxx $root/tests/fuzz/fuzz_$1.cpp"
    echo "  extra = -I$root/plugin/cli $(pkg-config --cflags $av_pkgs)"
    echo "build fuzz_$1: link obj/fuzz_$1.o $2"
    echo "  libs = $(pkg-config --libs fmt) $3"
  }
  target safetensors "libsupport.a libcore.a" ""
  target checkpoint_index "libsupport.a libcore.a" ""
  target config "libsupport.a libcore.a" ""
  target tokenizer "libsupport.a libcore.a" ""
  target options "libsupport.a libpipelines.a libwan.a libkernels.a libcore.a" \
    "-fopenmp $(pkg-config --libs openblas 2>/dev/null || echo -lopenblas) $(pkg-config --libs sentencepiece 2>/dev/null || echo -lsentencepiece)"
  target y4m "libsupport.a libcli.a" "$(pkg-config --libs libswscale libavutil)"
  target wan_shapes "libsupport.a libwan.a libcore.a" ""
  target wan_config "libsupport.a libwan.a libcore.a" ""
} >"$B/build.ninja.new"
cmp -s "$B/build.ninja.new" "$B/build.ninja" || mv "$B/build.ninja.new" "$B/build.ninja"
rm -f "$B/build.ninja.new"
ninja -C "$B" -j "$JOBS" "${TARGETS[@]/#/fuzz_}"
t1=$(date +%s)

# ---- replay the regressions, then fuzz ----

# allocator_may_return_null: a huge allocation must reach our bad_alloc handling, as it would
# outside the sanitizer, instead of being reported as a finding.
export ASAN_OPTIONS="allocator_may_return_null=1:detect_leaks=1:halt_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
status=0
declare -A result execs rate corpus
mkdir -p "$B/logs"
for t in "${TARGETS[@]}"; do
  bin="$B/fuzz_$t" seeds="$root/tests/fuzz/corpus/$t" regress="$root/tests/fuzz/regressions/$t"
  work="$B/corpus/$t" artifacts="$B/artifacts/$t"
  mkdir -p "$work" "$artifacts" "$seeds"
  rm -f "$artifacts"/*
  result[$t]=ok
  if compgen -G "$regress/*" >/dev/null; then
    if ! "$bin" "$regress"/* >"$B/logs/$t.regressions.log" 2>&1; then
      result[$t]=REGRESSED status=1
      echo "== $t: a regression input fails again (tests/fuzz/regressions/$t):"
      tail -n 40 "$B/logs/$t.regressions.log"
    fi
  fi
  dict=()
  [ -f "$root/tests/fuzz/$t.dict" ] && dict=("-dict=$root/tests/fuzz/$t.dict")
  # New inputs go to the first folder (the build's); fixed regressions seed the search too.
  corpora=("$work" "$seeds")
  [ "${result[$t]}" = ok ] && [ -d "$regress" ] && corpora+=("$regress")
  if ! "$bin" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$artifacts/" "${dict[@]}" "${corpora[@]}" >"$B/logs/$t.log" 2>&1; then
    result[$t]=FOUND status=1
    echo "== $t: finding (log $B/logs/$t.log):"
    grep -v '^#[0-9]' "$B/logs/$t.log" | tail -n 60
    mkdir -p "$regress"
    for a in "$artifacts"/*; do
      [ -f "$a" ] || continue
      cp "$a" "$regress/" && echo "   input kept as tests/fuzz/regressions/$t/$(basename "$a")"
    done
  fi
  execs[$t]=$(sed -n 's/^stat::number_of_executed_units: *//p' "$B/logs/$t.log" | tail -n 1)
  rate[$t]=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$B/logs/$t.log" | tail -n 1)
  corpus[$t]=$(find "${corpora[@]}" -type f | wc -l)
done
t2=$(date +%s)

echo
echo "== ci_fuzz summary (${FUZZ_SECONDS}s per target, $B) =="
printf '  %-18s %-10s %12s %10s %8s\n' target result executions exec/s corpus
for t in "${TARGETS[@]}"; do
  printf '  %-18s %-10s %12s %10s %8s\n' "$t" "${result[$t]}" "${execs[$t]:-?}" "${rate[$t]:-?}" "${corpus[$t]}"
done
echo "  build $((t1 - t0)) s, fuzzing $((t2 - t1)) s, total $((t2 - t0)) s"
exit $status
