# The compile-cache probe on a GPU box: for each backend named, a cold compile, a warm one and one seeded from the
# portable bundles only, each in a fresh process, one JSON line per run. Carry .whl (pydantic and its
# dependencies): `bash tools/compile_cache_probe/run.sh hf_static_compiled hf_compiled_loop hf_fused_loop`.
set -u
export PIP_DISABLE_PIP_VERSION_CHECK=1
pip install -q --no-deps --no-index --target /tmp/pp .whl/pydantic-2.14.3-*.whl .whl/pydantic_core-*.whl .whl/annotated_types-*.whl .whl/typing_inspection-*.whl 2>&1 | tail -2
export PYTHONPATH=$PWD/src:/tmp/pp
D=tools/compile_cache_probe
python3 -c 'import torch, triton, transformers; print(torch.__version__, triton.__version__, transformers.__version__, torch.cuda.get_device_name())'
[ -d /tmp/model ] || python3 $D/make_model.py /tmp/model
for b in "$@"; do
  rm -rf /tmp/x_$b /tmp/s_$b
  python3 $D/drive.py $b /tmp/x_$b /tmp/model 2>$OUT/$b.cold.err | grep RESULT
  python3 $D/drive.py $b /tmp/x_$b /tmp/model 2>$OUT/$b.warm.err | grep RESULT
  [ -n "${NOSEED:-}" ] && continue
  fp=$(ls /tmp/x_$b/inference-study/compile/); mkdir -p /tmp/s_$b/inference-study/compile/$fp
  cp -r /tmp/x_$b/inference-study/compile/$fp/artifacts /tmp/s_$b/inference-study/compile/$fp/
  du -sh /tmp/x_$b/inference-study/compile/$fp/* ; ls /tmp/x_$b/inference-study/compile/$fp/inductor | grep -i triton
  python3 $D/drive.py $b /tmp/s_$b /tmp/model 2>$OUT/$b.seeded.err | grep RESULT
done
