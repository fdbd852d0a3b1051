"""Parity fixtures for the Wan2.1 family (core/wan, pipelines/unipc), computed with diffusers.

    python -m venv /tmp/venv-wan && /tmp/venv-wan/bin/pip install -r tools/wan/requirements.txt
    /tmp/venv-wan/bin/python tools/wan/make_fixtures.py --out tests/fixtures/wan

Builds TINY random-weight versions of the three Wan2.1 networks (WanTransformer3DModel,
AutoencoderKLWan, UMT5EncoderModel) plus a tiny sentencepiece tokenizer, saves them in the
diffusers folder layout a real checkpoint uses (model_index.json + transformer/, text_encoder/,
tokenizer/, vae/, scheduler/), then reloads that folder in float32 and records what diffusers
computes from it:

- tokenizer ids of a few prompts (after the pipeline's prompt_clean),
- text-encoder output (zero-padded prompt embeddings) of one prompt,
- one transformer forward, the causal chunked VAE decode of a 3-frame latent,
- UniPC timesteps/sigmas for several (steps, shift) pairs and a model-free UniPC trajectory,
- a complete 3-step pipeline with CFG from stored initial latents.

Weights are stored in three dtypes on purpose (transformer bf16, sharded; VAE fp16; text encoder
fp32, sharded) so the C++ loaders' conversions are exercised; the fixtures are computed from the
reloaded (upcast) weights, so parity stays an fp32 comparison. A copy of the transformer and VAE
under the original Wan key names (as ComfyUI ships them) goes to original/; the renaming is checked
against diffusers' own single-file converters before writing.
"""
import argparse
import json
import os
import random
import shutil

import numpy as np
import torch
from safetensors.torch import save_file

SEED = 20240521
TEXT_LEN = 16  # max_sequence_length of the tiny pipeline (512 for the real model)


def log(*a):
    print("[wan-fixtures]", *a, flush=True)


# ------------------------------------------------------------------------------------------------
# Tokenizer
# ------------------------------------------------------------------------------------------------

WORDS = """a an the red green blue yellow fox dog cat bird fish horse river mountain snow rain sun moon star
sky city street car train boat ship ocean wave forest tree flower garden house window door light shadow
night day dawn dusk morning evening runs walks flies swims jumps dances sings falls rises glows shines flows
moves turns quick slow bright dark quiet loud small large tall short old young happy sad cold warm wet dry
soft hard gentle over under through across along between behind beside near far above below into onto
with without and or of camera zooms pans close up wide shot slow motion cinematic film video scene colorful
vivid detailed realistic café naïve résumé über straße 日本 桜 猫 犬 山 川 москва кошка""".split()


def make_tokenizer(folder, work):
    import sentencepiece as spm
    from transformers import T5Tokenizer

    rng = random.Random(SEED)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14))) for _ in range(3000)]
    corpus = os.path.join(work, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    prefix = os.path.join(work, "spiece")
    # T5 conventions: pad 0, eos 1, unk 2, no bos.
    spm.SentencePieceTrainer.train(input=corpus, model_prefix=prefix, vocab_size=256, model_type="unigram",
                                   pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0,
                                   hard_vocab_limit=False, minloglevel=2, num_threads=1)
    src = os.path.join(work, "spm")
    os.makedirs(src, exist_ok=True)
    shutil.copy(prefix + ".model", os.path.join(src, "spiece.model"))
    tok = T5Tokenizer.from_pretrained(src, extra_ids=0)
    tok.save_pretrained(folder)
    shutil.copy(prefix + ".model", os.path.join(folder, "spiece.model"))  # as in the real repos
    return tok


# ------------------------------------------------------------------------------------------------
# Models
# ------------------------------------------------------------------------------------------------

def perturb_(module, names, lo=0.5, hi=1.5, bias_std=0.1):
    """Norm weights start at exactly 1 (biases 0); random values make mistakes in applying them visible."""
    for n, p in module.named_parameters():
        if any(k in n for k in names):
            with torch.no_grad():
                if n.endswith("bias"):
                    p.normal_(0.0, bias_std)
                else:
                    p.uniform_(lo, hi)


def make_text_encoder(vocab):
    from transformers import UMT5Config, UMT5EncoderModel

    cfg = UMT5Config(vocab_size=vocab, d_model=32, d_kv=8, num_heads=4, num_layers=2, d_ff=48,
                     feed_forward_proj="gated-gelu", dense_act_fn="gelu_new", relative_attention_num_buckets=32,
                     relative_attention_max_distance=128, layer_norm_epsilon=1e-6, pad_token_id=0, eos_token_id=1,
                     decoder_start_token_id=0, tie_word_embeddings=False, is_encoder_decoder=True)
    m = UMT5EncoderModel(cfg)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "relative_attention_bias" in n:
                p.normal_(0.0, 0.5)
            elif n.endswith("layer_norm.weight"):
                p.uniform_(0.5, 1.5)
            elif p.ndim == 2:
                p.normal_(0.0, 1.0 / p.shape[1] ** 0.5)
    return m.eval()


def make_transformer():
    from diffusers import WanTransformer3DModel

    m = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=32, in_channels=16,
                              out_channels=16, text_dim=32, freq_dim=256, ffn_dim=96, num_layers=2,
                              cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)
    perturb_(m, ["norm_q", "norm_k", "norm2"])
    return m.eval()


def make_vae():
    from diffusers import AutoencoderKLWan

    m = AutoencoderKLWan(base_dim=4, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                         temperal_downsample=[False, True, True], dropout=0.0)
    perturb_(m, ["gamma"])
    with torch.no_grad():  # keep the random decoder's output mostly inside the [-1, 1] clamp
        m.decoder.conv_out.weight.mul_(0.7)
    return m.eval()


def make_scheduler(shift=3.0):
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000,
                                   flow_shift=shift, solver_order=2, solver_type="bh2", predict_x0=True,
                                   lower_order_final=True, final_sigmas_type="zero", timestep_spacing="linspace")


def round_to_(module, dtype):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.to(dtype).to(p.dtype))


# ------------------------------------------------------------------------------------------------
# Original (non-diffusers) Wan key names: the inverse of diffusers' single-file converters
# ------------------------------------------------------------------------------------------------

TRANSFORMER_TO_ORIGINAL = [  # ordered substring replacements, diffusers -> original
    ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
    ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
    ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
    ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
    ("condition_embedder.time_proj", "time_projection.1"),
    ("attn1.to_out.0.", "self_attn.o."), ("attn1.to_q.", "self_attn.q."), ("attn1.to_k.", "self_attn.k."),
    ("attn1.to_v.", "self_attn.v."), ("attn1.norm_", "self_attn.norm_"),
    ("attn2.to_out.0.", "cross_attn.o."), ("attn2.to_q.", "cross_attn.q."), ("attn2.to_k.", "cross_attn.k."),
    ("attn2.to_v.", "cross_attn.v."), ("attn2.norm_", "cross_attn.norm_"),
    ("ffn.net.0.proj", "ffn.0"), ("ffn.net.2", "ffn.2"),
    ("proj_out", "head.head"),
]


def transformer_to_original(sd):
    out = {}
    for k, v in sd.items():
        n = k
        if k == "scale_shift_table":
            n = "head.modulation"
        elif k.endswith(".scale_shift_table"):
            n = k.replace("scale_shift_table", "modulation")
        elif ".norm2." in k:  # the affine pre-cross-attention LayerNorm is norm3 in the original
            n = k.replace(".norm2.", ".norm3.")
        else:
            for a, b in TRANSFORMER_TO_ORIGINAL:
                n = n.replace(a, b)
        out[n] = v
    return out


def vae_decoder_to_original(sd):
    out = {}
    res = {"norm1.gamma": "residual.0.gamma", "conv1.weight": "residual.2.weight", "conv1.bias": "residual.2.bias",
           "norm2.gamma": "residual.3.gamma", "conv2.weight": "residual.6.weight", "conv2.bias": "residual.6.bias",
           "conv_shortcut.weight": "shortcut.weight", "conv_shortcut.bias": "shortcut.bias"}
    for k, v in sd.items():
        if k.startswith("post_quant_conv."):
            out[k.replace("post_quant_conv.", "conv2.")] = v
            continue
        if not k.startswith("decoder."):
            continue
        p = k.split(".")
        if k.startswith("decoder.conv_in."):
            n = "decoder.conv1." + p[-1]
        elif k.startswith("decoder.norm_out."):
            n = "decoder.head.0.gamma"
        elif k.startswith("decoder.conv_out."):
            n = "decoder.head.2." + p[-1]
        elif k.startswith("decoder.mid_block.resnets."):
            n = f"decoder.middle.{2 * int(p[3])}." + res[".".join(p[4:])]
        elif k.startswith("decoder.mid_block.attentions.0."):
            n = "decoder.middle.1." + ".".join(p[4:])
        elif ".resnets." in k:
            blk, r = int(p[2]), int(p[4])
            n = f"decoder.upsamples.{4 * blk + r}." + res[".".join(p[5:])]
        elif ".upsamplers.0." in k:
            n = f"decoder.upsamples.{4 * int(p[2]) + 3}." + ".".join(p[5:])
        else:
            raise KeyError(k)
        out[n] = v
    return out


def check_original_names(transformer_sd, vae_sd, t_orig, v_orig):
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers, convert_wan_vae_to_diffusers

    back = convert_wan_transformer_to_diffusers(dict(t_orig))
    assert set(back) == set(transformer_sd), sorted(set(back) ^ set(transformer_sd))[:10]
    back = convert_wan_vae_to_diffusers(dict(v_orig))
    want = {k for k in vae_sd if k.startswith(("decoder.", "post_quant_conv."))}
    assert set(back) == want, sorted(set(back) ^ want)[:10]


# ------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------

def unipc_cases():
    cases = []
    for steps, shift in [(50, 3.0), (50, 5.0), (10, 3.0), (3, 3.0), (2, 1.0), (1, 3.0), (7, 8.0)]:
        s = make_scheduler(shift)
        s.set_timesteps(steps)
        cases.append({"steps": steps, "shift": shift, "timesteps": [int(t) for t in s.timesteps],
                      "sigmas": [float(x) for x in s.sigmas.numpy()]})
    return cases


def unipc_trajectory(tensors):
    """A model-free trajectory: fixed random 'model outputs' fed to step(); isolates the solver."""
    steps, shift = 6, 3.0
    g = torch.Generator().manual_seed(SEED + 7)
    x = torch.randn(2, 3, 5, generator=g)
    outs = torch.randn(steps, 2, 3, 5, generator=g)
    s = make_scheduler(shift)
    s.set_timesteps(steps)
    xs = []
    tensors["unipc.x0"] = x.clone()
    tensors["unipc.model_outputs"] = outs.clone()
    for i, t in enumerate(s.timesteps):
        x = s.step(outs[i], t, x, return_dict=False)[0]
        xs.append(x.clone())
    tensors["unipc.samples"] = torch.stack(xs)
    return {"steps": steps, "shift": shift}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/wan")
    ap.add_argument("--work", default="/tmp/wan-fixtures-work")
    args = ap.parse_args()
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    from diffusers import WanPipeline
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean

    out = args.out
    model_dir = os.path.join(out, "tiny")
    orig_dir = os.path.join(out, "original")
    for d in (model_dir, orig_dir, args.work):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)

    log("tokenizer")
    tok = make_tokenizer(os.path.join(args.work, "tokenizer"), args.work)
    log("models")
    text_encoder = make_text_encoder(len(tok))
    transformer = make_transformer()
    vae = make_vae()
    round_to_(transformer, torch.bfloat16)
    round_to_(vae, torch.float16)
    pipe = WanPipeline(tokenizer=tok, text_encoder=text_encoder, transformer=transformer, vae=vae,
                       scheduler=make_scheduler(3.0))
    pipe.save_pretrained(model_dir, safe_serialization=True)
    # Re-save two components sharded, in their stored dtypes.
    shutil.rmtree(os.path.join(model_dir, "transformer"))
    transformer.to(torch.bfloat16).save_pretrained(os.path.join(model_dir, "transformer"), max_shard_size="150KB")
    shutil.rmtree(os.path.join(model_dir, "vae"))
    vae.to(torch.float16).save_pretrained(os.path.join(model_dir, "vae"))
    shutil.rmtree(os.path.join(model_dir, "text_encoder"))
    text_encoder.save_pretrained(os.path.join(model_dir, "text_encoder"), max_shard_size="20KB")
    shutil.copy(os.path.join(args.work, "spm", "spiece.model"), os.path.join(model_dir, "tokenizer", "spiece.model"))

    log("reload in float32")
    pipe = WanPipeline.from_pretrained(model_dir, dtype=torch.float32)
    tr, vae, te = pipe.transformer.eval(), pipe.vae.eval(), pipe.text_encoder.eval()
    assert not any(p.dtype != torch.float32 for p in list(tr.parameters()) + list(vae.parameters()))

    log("original key names")
    t_sd = {k: v.to(torch.bfloat16).contiguous() for k, v in tr.state_dict().items()}
    v_sd = {k: v.to(torch.float16).contiguous() for k, v in vae.state_dict().items()}
    t_orig, v_orig = transformer_to_original(t_sd), vae_decoder_to_original(v_sd)
    check_original_names(t_sd, v_sd, t_orig, v_orig)
    # As in the original Wan-AI repos: diffusion_pytorch_model.safetensors + a WanModel config.json.
    os.makedirs(os.path.join(orig_dir, "transformer"))
    save_file(t_orig, os.path.join(orig_dir, "transformer", "diffusion_pytorch_model.safetensors"))
    tc = tr.config
    with open(os.path.join(orig_dir, "transformer", "config.json"), "w") as f:
        json.dump({"_class_name": "WanModel", "dim": tc.num_attention_heads * tc.attention_head_dim, "eps": tc.eps,
                   "ffn_dim": tc.ffn_dim, "freq_dim": tc.freq_dim, "in_dim": tc.in_channels, "model_type": "t2v",
                   "num_heads": tc.num_attention_heads, "num_layers": tc.num_layers, "out_dim": tc.out_channels,
                   "text_len": 512}, f, indent=2)
        f.write("\n")
    save_file(v_orig, os.path.join(orig_dir, "wan_2.1_vae_tiny.safetensors"))

    tensors, cases = {}, {"text_len": TEXT_LEN}
    g = torch.Generator().manual_seed(SEED)

    log("tokenizer + text encoder")
    prompts = ["a red fox runs through the snow", "  Camera  pans\tover a quiet   river at dawn ",
               "café &amp; naïve résumé über straße", "日本の桜 and a cat", "", "zebra quokka xylophone"]
    cases["tokenizer"] = [{"prompt": p, "ids": tok(prompt_clean(p), add_special_tokens=True).input_ids}
                          for p in prompts]
    with torch.no_grad():
        emb = pipe._get_t5_prompt_embeds(prompt=prompts[0], max_sequence_length=TEXT_LEN, device="cpu",
                                         dtype=torch.float32)
    tensors["text_encoder.embeds"] = emb[0]
    cases["text_encoder"] = {"prompt": prompts[0]}

    log("transformer")
    latent = torch.randn(1, 16, 2, 4, 6, generator=g)
    ctx = torch.randn(1, TEXT_LEN, 32, generator=g)
    ctx[:, 5:] = 0.0
    with torch.no_grad():
        v = tr(hidden_states=latent, timestep=torch.tensor([757]), encoder_hidden_states=ctx, return_dict=False)[0]
    tensors.update({"transformer.latent": latent[0], "transformer.context": ctx[0], "transformer.out": v[0]})
    cases["transformer"] = {"timestep": 757}

    log("vae")
    z = torch.randn(1, 16, 3, 4, 6, generator=g)
    with torch.no_grad():
        video = vae.decode(z, return_dict=False)[0]
    tensors.update({"vae.z": z[0], "vae.video": video[0]})
    log("  vae output range", float(video.min()), float(video.max()),
        "clamped fraction", float((video.abs() >= 1).float().mean()))

    log("scheduler")
    cases["unipc"] = unipc_cases()
    cases["unipc_trajectory"] = unipc_trajectory(tensors)

    log("pipeline")
    pc = {"prompt": "a red fox runs through the snow at dawn", "negative_prompt": "", "height": 32, "width": 48,
          "num_frames": 9, "steps": 3, "guidance": 5.0, "shift": 3.0}
    latents = torch.randn(1, 16, 3, 4, 6, generator=g)
    steps = []

    def keep(p, i, t, kw):
        steps.append(kw["latents"].clone())
        return {}

    with torch.no_grad():
        frames = pipe(prompt=pc["prompt"], negative_prompt=pc["negative_prompt"], height=pc["height"],
                      width=pc["width"], num_frames=pc["num_frames"], num_inference_steps=pc["steps"],
                      guidance_scale=pc["guidance"], latents=latents.clone(), max_sequence_length=TEXT_LEN,
                      output_type="np", callback_on_step_end=keep).frames
    tensors.update({"pipeline.latents": latents[0], "pipeline.step_latents": torch.stack([s[0] for s in steps]),
                    "pipeline.frames": torch.from_numpy(np.ascontiguousarray(frames[0]))})
    cases["pipeline"] = pc

    save_file({k: v.contiguous().float() for k, v in tensors.items()}, os.path.join(out, "expected.safetensors"))
    with open(os.path.join(out, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, indent=1, ensure_ascii=False)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(r, n)) for r, _, ns in os.walk(out) for n in ns)
    log(f"wrote {out}: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
