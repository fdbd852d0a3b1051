#!/usr/bin/env bash
# The CUDA backend's GPU check, in one call, for a GPU machine that has the CUDA toolkit (and
# PyTorch, for the SDPA comparison) but no meson, ninja or package registry:
#   1. builds the backend, its tests and bench_cuda with plain nvcc / g++ command lines
#   2. runs the CPU-emulation tests (cuda-host), short smoke tests of the wgmma (Hopper) flash
#      kernels, cp.async-fed then TMA-fed (on failure or timeout the rest runs without the failing
#      kind: DS_FLASH_NO_WGMMA=1, or the TMA-fed configurations that fail alone: DS_FLASH_SKIP),
#      the GPU tests (cuda-gpu)
#   3. benchmarks attention (B=1, H=12, N=32760, d=128 and B=1, H=24, N=4608, d=128) and the
#      Wan-1.3B GEMMs, then PyTorch SDPA (flash and cuDNN backends, bf16) and torch bf16 matmul
#   4. profiles the default attention kernel with Nsight Compute (DS_GPU_CHECK_NCU=0 skips it), then
#      runs compute-sanitizer memcheck, racecheck and synccheck on the attention tests
#   5. when bench/pack_gpu_e2e.sh's bundle is there (.gpu_deps/e2e.tar.xz) and the budget allows,
#      generates one 480x832x81 clip through the C API on the GPU (bench/gpu_e2e.sh)
#   6. prints a short table last (also on a timeout or Ctrl-C)
#
# Usage: bench/gpu_check.sh [--all-archs] [--build-only]
#   --all-archs      build sm_80, sm_89 and sm_90a (as the meson build does) instead of the GPU's own
#   --build-only     stop after the build (no GPU needed): the meson test gpu-check-build runs it, so
#                    that a source this script's own lists lack fails CI, not a rare GPU session
# Environment:
#   DS_GPU_CHECK_BUILD   build folder (default /tmp/ds-gpu-check; objects are reused when current)
#   DS_GPU_CHECK_BUDGET  seconds for the whole run (default 570: fits a 10-minute job limit);
#                        a stage that would not fit is reported as "not run"
#   OUT                  when set, logs are written to $OUT/gpu_check/ (else to the build folder)
#   NVCC, CXX, PYTHON, FMT_INCLUDE, GTEST_ROOT   override tool / dependency discovery
#   DS_GPU_CHECK_GTEST   source | system | mini: force how GoogleTest is provided
#   DS_GPU_CHECK_ARCHS   e.g. "90a" or "80 89 90a": the SASS targets to build ("ptx": compute_80 PTX)
#   DS_GPU_CHECK_E2E_STEPS  steps of the end-to-end clip (default 50; 0 skips it)
#   DS_GPU_CHECK_NCU     0 skips the Nsight Compute profile of the default attention kernel
#
# fmt: the sources need fmt's headers (used header-only). Looked for in FMT_INCLUDE, the system
# include dirs, PyTorch's include dir (it ships fmt) and spdlog's bundled copy; failing those (or
# when nvcc rejects them), tests/cuda/mini_fmt, a stand-in for the "{}" formatting used here.
# GoogleTest: built from /usr/src/googletest (or GTEST_ROOT) when present, else the system
# libgtest, else tests/cuda/mini_gtest (a small stand-in that implements what these tests use).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${DS_GPU_CHECK_BUILD:-/tmp/ds-gpu-check}
LOGS=${OUT:+$OUT/gpu_check}
LOGS=${LOGS:-$BUILD/logs}
BUDGET=${DS_GPU_CHECK_BUDGET:-570}
ALL_ARCHS=0
BUILD_ONLY=0
for arg in "$@"; do
  case $arg in
    --all-archs) ALL_ARCHS=1 ;;
    --build-only) BUILD_ONLY=1 ;;
    *) echo "usage: $0 [--all-archs] [--build-only]" >&2; exit 2 ;;
  esac
done
mkdir -p "$BUILD/obj" "$LOGS"
START=$(date +%s)
# Each program times its GEMM algorithms and attention kernels afresh (bench_cuda and bench_wan_cuda
# report what the timing gains); nothing is read from or written to a tuning cache under $HOME.
export DS_TUNING_CACHE=""

STAGES=()   # "name|status|detail"
stage() { STAGES+=("$1|$2|$3"); printf '== %-28s %-8s %s\n' "$1" "$2" "$3"; }
elapsed() { echo $(( $(date +%s) - START )); }
remaining() { echo $(( BUDGET - $(elapsed) )); }

# Runs "$@" with at most min(cap, remaining budget − reserve) seconds; 124 when out of time.
run_limited() {
  local cap=$1 reserve=$2 log=$3
  shift 3
  local left=$(( $(remaining) - reserve ))
  (( left < cap )) && cap=$left
  if (( cap < 5 )); then
    echo "not run: time budget exhausted" > "$log"
    return 125
  fi
  timeout --kill-after=10 "$cap" "$@" > "$log" 2>&1
}

print_table() {
  trap - TERM INT
  local results="$LOGS/results.txt"
  cat "$LOGS"/bench_cuda.log "$LOGS"/bench_cuda_dit.log "$LOGS"/bench_wan_cuda.log "$LOGS"/sdpa.log 2>/dev/null | grep -E '^(RESULT|CHECK) ' > "$results"
  echo
  echo "================ ditstream GPU check ($(elapsed) s) ================"
  echo "machine: ${GPU_DESC:-unknown GPU}; nvcc ${NVCC_VERSION:-?}; torch ${TORCH_VERSION:-none}; $(date -u +%Y-%m-%dT%H:%MZ)"
  printf '%-30s %-9s %s\n' "stage" "status" "detail"
  for s in "${STAGES[@]}"; do IFS='|' read -r n st d <<< "$s"; printf '%-30s %-9s %s\n' "$n" "$st" "$d"; done
  echo
  echo "attention forward, bf16 in / f32 accumulate, non-causal (TFLOP/s = 4·B·H·N²·d / time; ms in brackets)"
  awk '
    function val(key,   i, kv) { for (i = 3; i <= NF; ++i) { split($i, kv, "="); if (kv[1] == key) return kv[2] } return "" }
    $1 == "RESULT" && ($2 ~ /^attention_/ || $2 ~ /^sdpa_/) && $2 !~ /^attention_flash_bf16_/ {
      shape = "H=" val("H") " N=" val("N") " d=" val("d"); shapes[shape] = 1
      cell[shape, $2] = (val("tflops") == "" ? "n/a" : sprintf("%s [%s]", val("tflops"), val("ms")))
      if ($2 == "attention_flash_bf16") config[shape] = val("config")
    }
    END {
      n = split("attention_flash_bf16 attention_backend_f32 sdpa_flash sdpa_cudnn", cols, " ")
      printf "%-22s %-20s %-20s %-20s %-20s %s\n", "shape", "ours: flash kernel", "ours: Backend f32", "SDPA flash", "SDPA cuDNN", "flash config"
      for (s in shapes) {
        printf "%-22s", s
        for (i = 1; i <= n; ++i) printf " %-20s", ((s, cols[i]) in cell ? cell[s, cols[i]] : "-")
        printf " %s\n", (s in config ? config[s] : "-")
      }
    }' "$results"
  echo
  echo "flash kernel configurations (TFLOP/s [ms] ×SDPA-flash; * fastest per shape); the backend runs the one in the table above"
  awk '
    function val(key,   i, kv) { for (i = 3; i <= NF; ++i) { split($i, kv, "="); if (kv[1] == key) return kv[2] } return "" }
    $1 == "RESULT" && $2 == "sdpa_flash" { sdpa["H=" val("H") " N=" val("N") " d=" val("d")] = val("tflops") }
    $1 == "RESULT" && $2 ~ /^attention_flash_bf16_/ && val("tflops") != "" {
      shape = "H=" val("H") " N=" val("N") " d=" val("d")
      if (!(shape in seen)) { seen[shape] = 1; order[++ns] = shape }
      row = "d=" val("d") " " val("config")
      if (!(row in known)) {
        known[row] = 1; rows[++nr] = row
        res[row] = sprintf("%s regs, %s KB, %s/SM", val("regs"), val("smem_kb"), val("blocks_per_sm"))
        if (val("local_bytes") + 0 > 0) res[row] = res[row] ", " val("local_bytes") " B local"
      }
      tf[row, shape] = val("tflops"); ms[row, shape] = val("ms")
      if (!(shape in best) || val("tflops") + 0 > best[shape] + 0) best[shape] = val("tflops")
    }
    END {
      if (nr == 0) { print "(no candidate results)"; exit }
      printf "%-24s %-26s", "config", "regs, smem, blocks"
      for (j = 1; j <= ns; ++j) printf " %-30s", order[j]
      printf "\n"
      for (r = 1; r <= nr; ++r) {
        printf "%-24s %-26s", rows[r], res[rows[r]]
        for (j = 1; j <= ns; ++j) {
          s = order[j]; c = "-"
          if ((rows[r], s) in tf) {
            c = sprintf("%s [%s]", tf[rows[r], s], ms[rows[r], s])
            if ((s in sdpa) && sdpa[s] + 0 > 0) c = c sprintf(" x%.2f", tf[rows[r], s] / sdpa[s])
            if (tf[rows[r], s] == best[s]) c = c " *"
          }
          printf " %-30s", c
        }
        printf "\n"
      }
    }' "$results"
  echo
  echo "GEMM at Wan2.1-1.3B shapes, y[M,N] = x[M,K]·w[N,K]ᵀ (TFLOP/s = 2·M·N·K / time)"
  awk '
    function val(key,   i, kv) { for (i = 3; i <= NF; ++i) { split($i, kv, "="); if (kv[1] == key) return kv[2] } return "" }
    $1 == "RESULT" && ($2 ~ /^gemm_/ || $2 ~ /^linear_/ || $2 ~ /^torch_gemm/) {
      shape = val("M") "x" val("N") "x" val("K"); if (!(shape in seen)) { seen[shape] = 1; order[++count] = shape }
      cell[shape, $2] = (val("tflops") == "" ? "n/a" : val("tflops"))
    }
    END {
      # Each family against cuBLASLt alone writing the same output type (bf16, or f32): the
      # "GEMMs at 90 % of cuBLAS" target, read off directly.
      n = split("gemm_bf16_cublaslt gemm_bf16_f32out_cublaslt torch_gemm_bf16 linear_backend_bf16xy linear_gelu_bf16xy linear_backend_bf16x_f32y linear_backend_bf16w linear_backend_tf32 linear_residual_fused linear_residual_unfused", cols, " ")
      split("- - 1 1 1 2 2 - 2 2", base_col, " ")
      printf "%-22s", "MxNxK"
      m = split("cuBLASLt_bf16_(ours)|cuBLASLt_bf16->f32|torch_bf16_matmul|linear_bf16_x,y,w|linear+GELU_bf16_x,y,w|linear_bf16_x,w_f32_y|linear_f32_x,y_bf16_w|Backend::linear_TF32|x+=g(a·wᵀ+b)_fused|linear,_gate_residual", heads, "|")
      for (i = 1; i <= m; ++i) { h = heads[i]; gsub(/_/, " ", h); printf " %-22s", h }
      printf "\n"
      for (r = 1; r <= count; ++r) {
        printf "%-22s", order[r]
        for (i = 1; i <= n; ++i) {
          c = ((order[r], cols[i]) in cell) ? cell[order[r], cols[i]] : "-"
          b = base_col[i]
          base = (b != "-" && (order[r], cols[b]) in cell) ? cell[order[r], cols[b]] + 0 : 0
          if (c != "-" && c != "n/a" && base > 0) c = c sprintf(" (%.0f%%)", 100 * c / base)
          printf " %-22s", c
        }
        printf "\n"
      }
    }' "$results"
  echo
  echo "the same GEMMs with the plans' algorithms timed (default) / cuBLASLt's heuristic first (TFLOP/s)"
  awk '
    function val(key,   i, kv) { for (i = 3; i <= NF; ++i) { split($i, kv, "="); if (kv[1] == key) return kv[2] } return "" }
    $1 == "RESULT" && $2 ~ /_heuristic$/ {
      name = substr($2, 1, length($2) - length("_heuristic")); shape = val("M") "x" val("N") "x" val("K")
      heur[name, shape] = val("tflops"); if (!((name, shape) in seen)) { seen[name, shape] = 1; order[++count] = name " " shape }
    }
    $1 == "RESULT" && $2 !~ /_heuristic$/ { tuned[$2, val("M") "x" val("N") "x" val("K")] = val("tflops") }
    END {
      if (count > 0) printf "%-28s %-20s %-10s %-10s %s\n", "op", "MxNxK", "timed", "heuristic", "ratio"
      for (r = 1; r <= count; ++r) {
        split(order[r], f, " "); t = ((f[1], f[2]) in tuned) ? tuned[f[1], f[2]] : "-"; h = heur[f[1], f[2]]
        ratio = (t != "-" && h + 0 > 0) ? sprintf("x%.3f", t / h) : "-"
        printf "%-28s %-20s %-10s %-10s %s\n", f[1], f[2], t, h, ratio
      }
    }' "$results"
  echo
  echo "Wan2.1-1.3B-shaped DiT forward, 480x832x81 (32760 tokens, 30 blocks, random weights)"
  grep -E '^RESULT (dit_forward|torch_dit_forward|engine_wan13b|engine_wan_vae)' "$results" | sed 's/^RESULT //'
  grep '^CHECK ' "$results" | sed 's/^CHECK /check: /'
  if [ -f "$LOGS/e2e.log" ]; then
    echo
    echo "the whole pipeline on this GPU (bench/gpu_e2e.sh: random 1.3B-width folder, 480x832x81, guidance on)"
    grep -E '^(model |  |GPU memory)' "$LOGS/e2e.log"
  fi
  echo "logs: $LOGS"
}
trap 'stage "interrupted" "FAIL" "killed after $(elapsed) s"; print_table; exit 124' TERM INT

# ---- tools and dependencies -----------------------------------------------------------------------

NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
CXX=${CXX:-g++}
PYTHON=${PYTHON:-python3}
if [ ! -x "$NVCC" ]; then
  stage "toolchain" "FAIL" "nvcc not found (set NVCC)"; print_table; exit 1
fi
CUDA_HOME=$(cd "$(dirname "$NVCC")/.." && pwd)
NVCC_VERSION=$("$NVCC" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')
CUDA_LIB=""
for d in "$CUDA_HOME/lib64" "$CUDA_HOME/lib" "$CUDA_HOME/targets/x86_64-linux/lib"; do
  [ -e "$d/libcudart.so" ] && [ -e "$d/libcublasLt.so" ] && { CUDA_LIB=$d; break; }
done
SANITIZER=$(command -v compute-sanitizer || echo "$CUDA_HOME/bin/compute-sanitizer")
GPU_DESC=$(nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader 2>/dev/null | head -1)
GPU_CC=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
{ nvidia-smi; "$NVCC" --version; "$CXX" --version; } > "$LOGS/environment.log" 2>&1

FMT_DIR=""
TORCH_INCLUDE=$("$PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "include"))' 2>/dev/null)
for d in ${FMT_INCLUDE:-} /usr/include /usr/local/include ${CONDA_PREFIX:+$CONDA_PREFIX/include} ${TORCH_INCLUDE:-}; do
  if [ -f "$d/fmt/format.h" ]; then FMT_DIR=$d/fmt; break; fi
  if [ -f "$d/spdlog/fmt/bundled/format.h" ]; then FMT_DIR=$d/spdlog/fmt/bundled; break; fi
done
MINI_FMT=$ROOT/tests/cuda/mini_fmt/fmt
[ -n "$FMT_DIR" ] || FMT_DIR=$MINI_FMT
# Only fmt itself on the include path (not the rest of PyTorch's headers).
mkdir -p "$BUILD/include"
ln -sfn "$FMT_DIR" "$BUILD/include/fmt"

GTEST_KIND=${DS_GPU_CHECK_GTEST:-}   # source | system | mini; found below when unset
GTEST_ROOT=${GTEST_ROOT:-}
if [ -z "$GTEST_KIND" ]; then
  GTEST_KIND=mini
  for d in "$GTEST_ROOT" /usr/src/googletest/googletest /usr/src/gtest; do
    if [ -n "$d" ] && [ -f "$d/src/gtest-all.cc" ]; then GTEST_ROOT=$d; GTEST_KIND=source; break; fi
  done
  if [ $GTEST_KIND = mini ] && [ -f /usr/include/gtest/gtest.h ] && ls /usr/lib/*/libgtest.* >/dev/null 2>&1; then
    GTEST_KIND=system
  fi
fi

if [ -n "${DS_GPU_CHECK_ARCHS:-}" ]; then
  ARCHS=$DS_GPU_CHECK_ARCHS
elif [ $ALL_ARCHS = 1 ] || [ -z "$GPU_CC" ]; then
  ARCHS="80 89 90a"
else
  case $GPU_CC in
    80|86|87) ARCHS=80 ;;   # sm_80 SASS runs on every 8.x before Ada
    89) ARCHS=89 ;;
    90) ARCHS=90a ;;
    *) ARCHS=ptx ;;         # newer GPUs: the driver JIT-compiles the compute_80 PTX
  esac
fi
GENCODE=()
for a in $ARCHS; do
  if [ "$a" = ptx ]; then GENCODE+=(-gencode arch=compute_80,code=compute_80)
  else GENCODE+=(-gencode "arch=compute_$a,code=sm_$a"); fi
done
# Probe nvcc with this host compiler and these fmt headers on one small translation unit: fall
# back to -allow-unsupported-compiler for a host compiler newer than nvcc knows, and to the
# minimal fmt stand-in when the found fmt does not get through nvcc's front end.
NVCC_EXTRA=()
probe_nvcc() {
  rm -f "$BUILD/probe.o"
  printf '#include "core/status.h"\n__global__ void probe(float* p) { p[0] = 1.0f; }\n' > "$BUILD/probe.cu"
  "$NVCC" -std=c++20 -I"$ROOT" -I"$BUILD/include" -DFMT_HEADER_ONLY -DFMT_USE_CONSTEXPR=1 "${NVCC_EXTRA[@]}" \
    "${GENCODE[@]:0:2}" -c "$BUILD/probe.cu" -o "$BUILD/probe.o" > "$LOGS/nvcc_probe.log" 2>&1
}
if ! probe_nvcc && grep -q 'unsupported GNU version' "$LOGS/nvcc_probe.log"; then
  NVCC_EXTRA=(-allow-unsupported-compiler)
  probe_nvcc
fi
if [ ! -f "$BUILD/probe.o" ] && [ "$FMT_DIR" != "$MINI_FMT" ]; then
  echo "fmt at $FMT_DIR fails under nvcc; using tests/cuda/mini_fmt" >> "$LOGS/nvcc_probe.log"
  FMT_DIR=$MINI_FMT
  ln -sfn "$FMT_DIR" "$BUILD/include/fmt"
  probe_nvcc
fi
if [ ! -f "$BUILD/probe.o" ]; then
  stage "toolchain" "FAIL" "nvcc cannot compile a probe (see $LOGS/nvcc_probe.log)"; tail -20 "$LOGS/nvcc_probe.log"; print_table; exit 1
fi
rm -f "$BUILD/probe.o"
stage "toolchain" "ok" "nvcc $NVCC_VERSION, $($CXX -dumpfullversion 2>/dev/null || echo "$CXX"), fmt $FMT_DIR, gtest $GTEST_KIND, archs $ARCHS"
[ -n "$CUDA_LIB" ] || { stage "toolchain" "FAIL" "libcudart/libcublasLt not found under $CUDA_HOME"; print_table; exit 1; }

# ---- build --------------------------------------------------------------------------------------------

# nlohmann/json (header-only; core/config.cpp reads config.json with it): the system's, else a copy
# carried to the GPU machine in .gpu_deps/include (ignored by git).
JSON_FLAGS=()
if [ ! -f /usr/include/nlohmann/json.hpp ] && [ -f "$ROOT/.gpu_deps/include/nlohmann/json.hpp" ]; then
  JSON_FLAGS=(-isystem "$ROOT/.gpu_deps/include")
fi
COMMON=(-std=c++20 -O2 -I"$ROOT" -I"$BUILD/include" "${JSON_FLAGS[@]}" -isystem "$CUDA_HOME/include" -DFMT_HEADER_ONLY -DDS_HAVE_CUDA=1)
NVCC_FLAGS=(-std=c++20 -O3 -lineinfo -I"$ROOT" -I"$BUILD/include" -DFMT_HEADER_ONLY -DFMT_USE_CONSTEXPR=1 "${NVCC_EXTRA[@]}"
            "-DDS_CUDA_ARCHS=\"sm_${ARCHS// //}\"" -Xptxas -warn-spills,-warn-lmem-usage --resource-usage "${GENCODE[@]}")
GTEST_FLAGS=()
case $GTEST_KIND in
  source) GTEST_FLAGS=(-isystem "$GTEST_ROOT/include" -I"$GTEST_ROOT") ;;
  mini) GTEST_FLAGS=(-I"$ROOT/tests/cuda/mini_gtest") ;;
esac

# An object is rebuilt when missing or older than its source or than the newest header we own.
NEWEST_HEADER=$(find "$ROOT/core" "$ROOT/kernels" "$ROOT/tests/cuda" "$ROOT/tests/kernels" \
  \( -name '*.h' -o -name '*.cuh' \) -newer "$BUILD/obj/.flags" 2>/dev/null | head -1)
FLAGS_NOW="${NVCC_FLAGS[*]} ${COMMON[*]} $GTEST_KIND $FMT_DIR"
if [ ! -f "$BUILD/obj/.flags" ] || [ "$(cat "$BUILD/obj/.flags")" != "$FLAGS_NOW" ] || [ -n "$NEWEST_HEADER" ]; then
  rm -f "$BUILD"/obj/*.o
fi
echo "$FLAGS_NOW" > "$BUILD/obj/.flags"

compile() {  # source → object, logging to <object>.log
  local src=$1 obj=$2
  [ -f "$obj" ] && [ "$obj" -nt "$src" ] && return 0
  case $src in
    *.cu) "$NVCC" "${NVCC_FLAGS[@]}" -c "$src" -o "$obj" > "$obj.log" 2>&1 ;;
    *) "$CXX" "${COMMON[@]}" "${GTEST_FLAGS[@]}" -c "$src" -o "$obj" > "$obj.log" 2>&1 ;;
  esac || { echo "FAILED: $src (see $obj.log)"; tail -20 "$obj.log"; rm -f "$obj"; return 1; }
}

LIB_SOURCES=(core/tensor.cpp core/text_file.cpp core/log.cpp core/backend.cpp core/frame.cpp core/patchify.cpp
             kernels/cpu/reference_backend.cpp)
# The engine's Wan transformer, VAE and text encoder and what they need from core/ (no BLAS, no sentencepiece), for bench_wan_cuda.
ENGINE_SOURCES=(core/config.cpp core/safetensors.cpp core/weights.cpp core/layers.cpp core/rope.cpp
                core/first_block_cache.cpp core/wan/wan_config.cpp core/wan/wan_lora.cpp core/wan/wan_weights.cpp core/wan/wan_transformer.cpp core/wan/wan_vae.cpp core/wan/umt5.cpp
                bench/random_wan.cpp)
while IFS= read -r f; do LIB_SOURCES+=("${f#$ROOT/}"); done < <(find "$ROOT/kernels/cuda" -path '*/bench' -prune -o \( -name '*.cu' -o -name '*.cpp' \) -print | sort)
GPU_TEST_SOURCES=(tests/cuda/test_cuda_ops.cpp tests/cuda/test_cuda_attention.cpp)
HOST_TEST_SOURCES=(tests/cuda/test_flash_layout.cpp tests/cuda/test_hopper_layout.cpp tests/cuda/test_arena_rows.cpp
                   tests/cuda/test_tma_ring.cpp tests/cuda/test_patch_index.cpp tests/cuda/test_frame_math.cpp
                   tests/cuda/test_tuning.cpp)
GTEST_SOURCES=()
case $GTEST_KIND in
  source) GTEST_SOURCES=("$GTEST_ROOT/src/gtest-all.cc" "$GTEST_ROOT/src/gtest_main.cc") ;;
  mini) GTEST_SOURCES=("$ROOT/tests/cuda/mini_gtest/gtest_main.cpp") ;;
esac

obj_of() { local s=${1#$ROOT/}; echo "$BUILD/obj/$(echo "$s" | tr '/' '_').o"; }

BUILD_T0=$(date +%s)
JOBS=$(nproc 2>/dev/null || echo 4)
build_all() {
  local src
  rm -f "$BUILD/obj/FAILED"
  for src in "${LIB_SOURCES[@]}" "${GPU_TEST_SOURCES[@]}" "${HOST_TEST_SOURCES[@]}" kernels/cuda/bench/bench_cuda.cpp kernels/cuda/bench/bench_cuda_dit.cpp \
             "${ENGINE_SOURCES[@]}" bench/bench_wan_cuda.cpp "${GTEST_SOURCES[@]}"; do
    [ "${src:0:1}" = / ] || src=$ROOT/$src
    while (( $(jobs -rp | wc -l) >= JOBS )); do sleep 0.2; done
    { compile "$src" "$(obj_of "$src")" || touch "$BUILD/obj/FAILED"; } &
  done
  wait
  [ ! -e "$BUILD/obj/FAILED" ] || return 1
  local lib_objs=() o
  for src in "${LIB_SOURCES[@]}"; do lib_objs+=("$(obj_of "$ROOT/$src")"); done
  local gtest_objs=() gtest_libs=()
  for src in "${GTEST_SOURCES[@]}"; do gtest_objs+=("$(obj_of "$src")"); done
  [ $GTEST_KIND = system ] && gtest_libs=(-lgtest -lgtest_main)
  local link=(-L"$CUDA_LIB" -Wl,-rpath,"$CUDA_LIB" -lcublasLt -lcudart -lpthread -ldl -lrt)
  local tests=() hosts=()
  for src in "${GPU_TEST_SOURCES[@]}"; do tests+=("$(obj_of "$ROOT/$src")"); done
  for src in "${HOST_TEST_SOURCES[@]}"; do hosts+=("$(obj_of "$ROOT/$src")"); done
  "$CXX" -o "$BUILD/test_cuda_gpu" "${tests[@]}" "${lib_objs[@]}" "${gtest_objs[@]}" "${gtest_libs[@]}" "${link[@]}" &&
  "$CXX" -o "$BUILD/test_cuda_host" "${hosts[@]}" "${lib_objs[@]}" "${gtest_objs[@]}" "${gtest_libs[@]}" "${link[@]}" &&
  "$CXX" -o "$BUILD/bench_cuda" "$(obj_of "$ROOT/kernels/cuda/bench/bench_cuda.cpp")" "${lib_objs[@]}" "${link[@]}" &&
  "$CXX" -o "$BUILD/bench_cuda_dit" "$(obj_of "$ROOT/kernels/cuda/bench/bench_cuda_dit.cpp")" "${lib_objs[@]}" "${link[@]}" &&
  local engine_objs=()
  for src in "${ENGINE_SOURCES[@]}" bench/bench_wan_cuda.cpp; do engine_objs+=("$(obj_of "$ROOT/$src")"); done
  "$CXX" -o "$BUILD/bench_wan_cuda" "${engine_objs[@]}" "${lib_objs[@]}" "${link[@]}"
}
if build_all > "$LOGS/build.log" 2>&1; then
  cat "$BUILD"/obj/*.cu.o.log > "$LOGS/resource_usage.log" 2>/dev/null
  SPILLS=$(grep -hE 'bytes spill (stores|loads)' "$LOGS/resource_usage.log" | grep -vc ' 0 bytes spill stores, 0 bytes spill loads')
  stage "build" "ok" "$(( $(date +%s) - BUILD_T0 )) s on $JOBS cores; kernels with spills: $SPILLS (resource_usage.log)"
  if [ "$BUILD_ONLY" = 1 ]; then print_table; exit 0; fi
else
  stage "build" "FAIL" "see $LOGS/build.log"
  tail -30 "$LOGS/build.log"
  print_table
  exit 1
fi

# ---- tests ----------------------------------------------------------------------------------------------

summarize_gtest() {  # log → "N passed, N failed, N skipped"
  local log=$1
  local ok failed skipped
  ok=$(grep -c '^\[       OK \]' "$log")
  failed=$(grep -oE '^\[  FAILED  \] [A-Za-z0-9_]+\.[A-Za-z0-9_]+' "$log" | sort -u | wc -l)
  skipped=$(grep -oE '^\[  SKIPPED \] [A-Za-z0-9_]+\.[A-Za-z0-9_]+' "$log" | sort -u | wc -l)
  echo "$ok passed, $failed failed, $skipped skipped"
}

run_limited 60 0 "$LOGS/cuda_host.log" "$BUILD/test_cuda_host"
rc=$?
stage "cuda-host tests (CPU)" "$([ $rc = 0 ] && echo ok || echo FAIL)" "$(summarize_gtest "$LOGS/cuda_host.log") (rc $rc)"

# The wgmma (Hopper) flash kernels first, alone and briefly: kernels written without a GPU may
# fault (a hang in a barrier or a wgmma wait), and that must not take the rest of the run with it.
# First without the TMA-fed ones, then with them; what fails is switched off for the remaining
# stages (DS_FLASH_NO_WGMMA=1: every wgmma kernel, =tma: the TMA-fed ones; see flash::Runnable).
# What the later stages keep in reserve scales with the budget (a short run still smoke-tests).
RESERVE_LATER=$(( BUDGET / 2 < 300 ? BUDGET / 2 : 300 ))
SMOKE_FILTER='CudaAttention.FlashKernelOnExactAllocations:CudaAttention.FlashReadsBf16InPlaceAndWritesBf16'
DS_FLASH_NO_WGMMA=tma run_limited 45 "$RESERVE_LATER" "$LOGS/wgmma_smoke.log" "$BUILD/test_cuda_gpu" --gtest_filter="$SMOKE_FILTER"
rc=$?
if [ $rc = 0 ]; then
  stage "wgmma kernels (smoke)" "ok" "$(summarize_gtest "$LOGS/wgmma_smoke.log")"
  run_limited 45 "$RESERVE_LATER" "$LOGS/wgmma_tma_smoke.log" "$BUILD/test_cuda_gpu" --gtest_filter="$SMOKE_FILTER"
  rc=$?
  if [ $rc = 0 ]; then
    stage "wgmma TMA kernels (smoke)" "ok" "$(summarize_gtest "$LOGS/wgmma_tma_smoke.log")"
  else
    grep -E -A6 ': Failure$' "$LOGS/wgmma_tma_smoke.log" | head -30
    # One configuration at a time (DS_FLASH_SKIP the others), so that a new kernel's fault does
    # not take the measured ones with it: only the failing ones are left out from here on.
    tma_configs=$("$BUILD/bench_cuda" --list-configs | awk '$1 == "config" && / tma=1$/ { print $2 }' | sort -u)
    failed_tma=()
    passed_tma=()
    for config in $tma_configs; do
      others=$(echo "$tma_configs" | grep -vx "$config" | paste -sd, -)
      DS_FLASH_SKIP=$others run_limited 30 "$RESERVE_LATER" "$LOGS/wgmma_tma_smoke_$config.log" "$BUILD/test_cuda_gpu" --gtest_filter="$SMOKE_FILTER"
      case $? in
        0) passed_tma+=("$config") ;;
        124) failed_tma+=("$config(timeout)") ;;
        125) failed_tma+=("$config(not-run)") ;;
        *) failed_tma+=("$config") ;;
      esac
    done
    if ((${#passed_tma[@]} == 0 || ${#failed_tma[@]} == 0)); then
      # All fail, or none alone (an interaction, or an intermittent fault): none of them is trusted.
      export DS_FLASH_NO_WGMMA=tma
      stage "wgmma TMA kernels (smoke)" "FAIL" "rc $rc; $(summarize_gtest "$LOGS/wgmma_tma_smoke.log"); one by one: ${failed_tma[*]:-none} failed; later stages without them"
    else
      DS_FLASH_SKIP=$(IFS=,; echo "${failed_tma[*]}" | sed 's/([a-z-]*)//g')
      export DS_FLASH_SKIP
      stage "wgmma TMA kernels (smoke)" "FAIL" "rc $rc; one by one: ${failed_tma[*]:-none} failed (left out from here on), ${passed_tma[*]} passed"
    fi
  fi
else
  export DS_FLASH_NO_WGMMA=1
  stage "wgmma kernels (smoke)" "FAIL" "rc $rc; $(summarize_gtest "$LOGS/wgmma_smoke.log"); later stages without them"
  grep -E -A6 ': Failure$' "$LOGS/wgmma_smoke.log" | head -30
fi

run_limited 240 $(( RESERVE_LATER * 4 / 5 )) "$LOGS/cuda_gpu.log" "$BUILD/test_cuda_gpu"
rc=$?
detail=$(summarize_gtest "$LOGS/cuda_gpu.log")
status=ok
[ $rc = 0 ] || status=FAIL
# On a GPU machine a skip means the tests did not see the GPU: that is a failure of this check.
[[ $detail == *" 0 skipped" ]] || status=FAIL
stage "cuda-gpu tests" "$status" "$detail (rc $rc)"
grep -E -A6 ': Failure$' "$LOGS/cuda_gpu.log" | head -60
grep -E -A1 ': Skipped$' "$LOGS/cuda_gpu.log" | head -2
# Every attention configuration has now passed the GPU tests here (one that failed its smoke test
# is in DS_FLASH_SKIP): the benchmarks' attention tuner may also time those not yet run on a GPU
# before this machine (kernels/cuda/attention/attention_choice.h).
[ $status = ok ] && export DS_FLASH_UNVERIFIED=1

# ---- benchmarks -------------------------------------------------------------------------------------------

# The card's clocks, temperature and power around the benchmarks: two machines of one kind have
# differed by 15 % in the same kernels (bench/RESULTS.md), so a throttled card shows here.
gpu_state() {
  local q='clocks.sm,clocks.max.sm,temperature.gpu,power.draw,power.limit'
  local s
  s=$(timeout 10 nvidia-smi --query-gpu="$q,clocks_event_reasons.active" --format=csv,noheader 2>/dev/null | head -1) ||
    s=$(timeout 10 nvidia-smi --query-gpu="$q" --format=csv,noheader 2>/dev/null | head -1)
  echo "${s:-nvidia-smi gave no reading} (sm clock, max sm clock, temperature, power, power limit[, clock event reasons])"
}
stage "GPU state before benches" "info" "$(gpu_state)"

run_limited 150 150 "$LOGS/bench_cuda.log" "$BUILD/bench_cuda"
rc=$?
stage "bench_cuda" "$([ $rc = 0 ] && echo ok || echo FAIL)" "rc $rc ($(grep -c '^RESULT' "$LOGS/bench_cuda.log") results)"

# The forward again with the attention kernel bench_cuda found fastest at the forward's shape
# (N=32760), when that is not the default: the forward's time with the best kernel on this card,
# read in the same run.
# Only a kernel whose sampled rows bench_cuda found right (CHECK error ≤ 1e-2) counts.
read -r default_config fastest_config < <(awk '
  function val(key,   i, kv) { for (i = 3; i <= NF; ++i) { split($i, kv, "="); if (kv[1] == key) return kv[2] } return "" }
  $1 == "RESULT" && val("N") == 32760 && val("d") == 128 && val("tflops") != "" {
    if ($2 == "attention_flash_bf16") def = val("config")
    if ($2 ~ /^attention_flash_bf16_/) { tf[$2] = val("tflops"); cfg[$2] = val("config") }
  }
  $1 == "CHECK" && $2 ~ /^attention_flash_bf16_/ && val("N") == 32760 && val("d") == 128 {
    for (i = 3; i < NF; ++i) if ($i == "error") err = $(i + 1)
    if (err ~ /^[0-9.]+e[-+][0-9]+$/ && err + 0 <= 0.01) right[$2] = 1
  }
  END {
    for (name in tf) if ((name in right) && tf[name] + 0 > best + 0) { best = tf[name]; fast = cfg[name] }
    print (def == "" ? "-" : def), (fast == "" ? "-" : fast)
  }' "$LOGS/bench_cuda.log" 2>/dev/null)
flash_args=()
if [ "${fastest_config:--}" != - ] && [ "$fastest_config" != "${default_config:--}" ]; then
  flash_args=(--flash-configs "$fastest_config")
fi
run_limited 120 120 "$LOGS/bench_wan_cuda.log" "$BUILD/bench_wan_cuda" "$ROOT" --work "$BUILD/wan13b_random" "${flash_args[@]}"
rc=$?
stage "bench_wan_cuda (engine)" "$([ $rc = 0 ] && echo ok || echo FAIL)" "rc $rc; $(grep -h '^CHECK' "$LOGS/bench_wan_cuda.log" | cut -c7-60)"

run_limited 90 120 "$LOGS/bench_cuda_dit.log" "$BUILD/bench_cuda_dit"
rc=$?
stage "bench_cuda_dit" "$([ $rc = 0 ] && echo ok || echo FAIL)" "rc $rc ($(grep -c '^RESULT' "$LOGS/bench_cuda_dit.log") results)"
stage "GPU state after benches" "info" "$(gpu_state)"

cat > "$BUILD/sdpa_bench.py" <<'PY'
# PyTorch SDPA (flash and cuDNN backends) and bf16 matmul at the shapes bench_cuda measures.
import sys
import torch
import torch.nn.functional as F

def timed(fn, iters=10):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) / iters

print(f"torch {torch.__version__}, cuda {torch.version.cuda}, cudnn {torch.backends.cudnn.version()}, "
      f"{torch.cuda.get_device_name()}", file=sys.stderr)
try:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    backends = {"flash": lambda: sdpa_kernel(SDPBackend.FLASH_ATTENTION),
                "cudnn": lambda: sdpa_kernel(SDPBackend.CUDNN_ATTENTION)}
except ImportError:  # torch < 2.3
    backends = {"flash": lambda: torch.backends.cuda.sdp_kernel(enable_flash=True, enable_math=False,
                                                                enable_mem_efficient=False)}

for b, h, n, d in [(1, 12, 32760, 128), (1, 24, 4608, 128)]:
    q, k, v = (torch.randn(b, h, n, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    shape = f"B={b} H={h} N={n} d={d}"
    for name, ctx in backends.items():
        try:
            with ctx():
                ms = timed(lambda: F.scaled_dot_product_attention(q, k, v))
            print(f"RESULT sdpa_{name} {shape} ms={ms:.3f} tflops={4 * b * h * n * n * d / ms / 1e9:.1f}")
        except Exception as e:  # backend not available for this build/GPU
            print(f"RESULT sdpa_{name} {shape} unavailable={type(e).__name__}")
            print(f"sdpa_{name}: {e}", file=sys.stderr)
    del q, k, v

tokens, dim, ffn = 32760, 1536, 8960
for m, n, k in [(tokens, 3 * dim, dim), (tokens, dim, dim), (tokens, ffn, dim), (tokens, dim, ffn)]:
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
    ms = timed(lambda: x @ w.t(), iters=20)
    print(f"RESULT torch_gemm_bf16 M={m} N={n} K={k} ms={ms:.3f} tflops={2 * m * n * k / ms / 1e9:.1f}")
    del x, w

# The Wan2.1-1.3B-shaped forward of bench_cuda_dit, in PyTorch bf16 with SDPA (its default backend
# choice), the op order of diffusers' WanTransformerBlock; one block's random weights for all 30.
def wan_forward(layers=30, n=32760, d=1536, heads=12, ffn=8960, text=512):
    dt, dev = torch.bfloat16, "cuda"
    g = torch.Generator(device=dev).manual_seed(0)
    r = lambda *shape, s=1.0: torch.randn(*shape, device=dev, dtype=dt, generator=g) * s
    lin = lambda o, i: (r(o, i, s=i ** -0.5), r(o, s=0.02))
    q, k, v, o, cq, ck, cv, co = (lin(d, d) for _ in range(8))
    fc1, fc2 = lin(ffn, d), lin(d, ffn)
    nq, nk, cnq, cnk, n2w = (1 + r(d, s=0.05) for _ in range(5))
    n2b, mod = r(d, s=0.02), r(6, d, s=0.1)
    x, ctx = r(n, d), r(text, d)
    ang = torch.rand(n, d // heads // 2, device=dev) * 6.28
    cos, sin = ang.cos().to(dt), ang.sin().to(dt)
    hd = d // heads

    def rope(t):
        t = t.view(n, heads, hd // 2, 2)
        a, b = t[..., 0], t[..., 1]
        c, s_ = cos[:, None], sin[:, None]
        return torch.stack([a * c - b * s_, a * s_ + b * c], -1).view(n, heads, hd)

    def attn(qq, kk, vv, nq_, nk_):
        qq = qq.view(nq_, heads, hd).transpose(0, 1)[None]
        kk = kk.view(nk_, heads, hd).transpose(0, 1)[None]
        vv = vv.view(nk_, heads, hd).transpose(0, 1)[None]
        return F.scaled_dot_product_attention(qq, kk, vv)[0].transpose(0, 1).reshape(nq_, d)

    def block(x):
        a = F.layer_norm(x, (d,), eps=1e-6) * (1 + mod[1]) + mod[0]
        qq = F.rms_norm(F.linear(a, *q), (d,), nq, 1e-6)
        kk = F.rms_norm(F.linear(a, *k), (d,), nk, 1e-6)
        vv = F.linear(a, *v)
        qq, kk = rope(qq.view(n, heads, hd)), rope(kk.view(n, heads, hd))
        x = x + mod[2] * F.linear(attn(qq, kk, vv.view(n, heads, hd), n, n), *o)
        a = F.layer_norm(x, (d,), n2w, n2b, 1e-6)
        qq = F.rms_norm(F.linear(a, *cq), (d,), cnq, 1e-6)
        kk = F.rms_norm(F.linear(ctx, *ck), (d,), cnk, 1e-6)
        x = x + F.linear(attn(qq, kk, F.linear(ctx, *cv), n, text), *co)
        a = F.layer_norm(x, (d,), eps=1e-6) * (1 + mod[4]) + mod[3]
        return x + mod[5] * F.linear(F.gelu(F.linear(a, *fc1), approximate="tanh"), *fc2)

    def forward():
        y = x
        for _ in range(layers):
            y = block(y)
        return y

    with torch.no_grad():
        ms = timed(forward, iters=3)
    flops = layers * (2 * n * (6 * d * d + 2 * d * ffn) + 4 * text * d * d + 4 * n * n * d + 4 * n * text * d)
    print(f"RESULT torch_dit_forward_wan13b tokens={n} layers={layers} text={text} ms={ms:.1f} tflops={flops / ms / 1e9:.1f}")

try:
    wan_forward()
except Exception as e:
    print(f"RESULT torch_dit_forward_wan13b unavailable={type(e).__name__}")
    print(f"torch_dit_forward: {e}", file=sys.stderr)
PY
TORCH_VERSION=$("$PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null)
if [ -n "$TORCH_VERSION" ]; then
  run_limited 120 100 "$LOGS/sdpa.log" "$PYTHON" "$BUILD/sdpa_bench.py"
  rc=$?
  stage "PyTorch SDPA / matmul" "$([ $rc = 0 ] && echo ok || echo FAIL)" "torch $TORCH_VERSION, rc $rc"
else
  stage "PyTorch SDPA / matmul" "skipped" "no torch for $PYTHON"
fi

# ---- a profile of the default attention kernel ----------------------------------------------------------

# Nsight Compute's view of the backend's hd-128 flash kernel at N=32760 (its first launch in
# bench_cuda): how busy the tensor pipe, the SFU (exp2) and the memory system are, and where warps
# stall: what to change next. Clocks are left alone (--clock-control none). The kernel name is the
# one gpu_check's bench log reports as the default configuration.
NCU=$(command -v ncu || echo "$CUDA_HOME/bin/ncu")
if [ "${DS_GPU_CHECK_NCU:-1}" = 0 ]; then
  stage "ncu profile" "skipped" "DS_GPU_CHECK_NCU=0"
elif [ ! -x "$NCU" ]; then
  stage "ncu profile" "skipped" "ncu not found"
else
  default_config=$(awk '$1 == "RESULT" && $2 == "attention_flash_bf16" && / N=32760 / { for (i = 3; i <= NF; ++i) if ($i ~ /^config=/) { sub(/^config=/, "", $i); print $i; exit } }' "$LOGS/bench_cuda.log")
  case $default_config in
    *_tma|*_tma_*) kernel_regex='HopperTmaKernel' ;;
    wgmma*) kernel_regex='HopperForwardKernel' ;;
    *) kernel_regex='FlashForwardKernel' ;;
  esac
  run_limited 90 60 "$LOGS/ncu_attention.log" "$NCU" --clock-control none --kernel-name "regex:$kernel_regex" \
    --launch-count 1 --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
    --section WarpStateStats --section Occupancy "$BUILD/bench_cuda" --quick
  rc=$?
  # A profiler that cannot read the counters here is not a failure of the backend.
  stage "ncu profile" "$([ $rc = 0 ] && echo ok || echo warn)" "rc $rc; ${default_config:-?} ($kernel_regex), ncu_attention.log"
fi

# ---- sanitizers -----------------------------------------------------------------------------------------

# memcheck sees the backend's arena as one allocation, so FlashKernelOnExactAllocations (the
# kernel on exact-size buffers) is the test that can catch an out-of-bounds access.
sanitize() {  # tool filter cap
  local tool=$1 filter=$2 cap=$3 log="$LOGS/sanitizer_$1.log"
  if [ ! -x "$SANITIZER" ]; then stage "compute-sanitizer $tool" "skipped" "compute-sanitizer not found"; return; fi
  run_limited "$cap" 0 "$log" "$SANITIZER" --tool "$tool" --error-exitcode 3 "$BUILD/test_cuda_gpu" --gtest_filter="$filter"
  local rc=$?
  local summary
  summary=$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$log" | tail -1)
  local tests
  tests=$(summarize_gtest "$log")
  if [ $rc = 0 ]; then stage "compute-sanitizer $tool" "ok" "${summary:-no summary}; $tests"
  elif [ $rc = 124 ] || [ $rc = 125 ]; then stage "compute-sanitizer $tool" "TIMEOUT" "rc $rc; $tests"
  else stage "compute-sanitizer $tool" "FAIL" "rc $rc; ${summary:-see log}; $tests"; fi
}
# (The Tuned* tests run the same kernels many times over, at a large shape: not under memcheck.)
# The norms and the frame conversion on exact allocations too (their other tests use arena space,
# where a read past a row's end stays inside the allocation and is not seen).
sanitize memcheck 'CudaAttention.*:CudaOps.NormsOnExactAllocations:CudaOps.PlanarToPixels*-*LongSequence*:*Tuned*' 100
sanitize racecheck 'CudaAttention.FlashKernelOnExactAllocations:CudaAttention.FlashMatchesReference' 90
sanitize synccheck 'CudaAttention.FlashKernelOnExactAllocations' 40

E2E_STEPS=${DS_GPU_CHECK_E2E_STEPS:-50}
if [ "$E2E_STEPS" = 0 ]; then
  stage "end-to-end clip" "skipped" "DS_GPU_CHECK_E2E_STEPS=0"
elif [ ! -f "$ROOT/.gpu_deps/e2e.tar.xz" ]; then
  stage "end-to-end clip" "skipped" "no bundle: run bench/pack_gpu_e2e.sh <build> where the project builds"
else
  run_limited 240 0 "$LOGS/e2e.log" "$ROOT/bench/gpu_e2e.sh" "$E2E_STEPS"
  rc=$?
  if [ $rc = 0 ]; then stage "end-to-end clip" "ok" "$(grep -h 'clip (best' "$LOGS/e2e.log" | sed 's/^ *//')"
  elif [ $rc = 124 ] || [ $rc = 125 ]; then stage "end-to-end clip" "TIMEOUT" "rc $rc (see e2e.log)"
  else stage "end-to-end clip" "FAIL" "rc $rc (see e2e.log)"; fi
fi

print_table
for s in "${STAGES[@]}"; do [[ $s == *"|FAIL|"* || $s == *"|TIMEOUT|"* ]] && exit 1; done
exit 0
