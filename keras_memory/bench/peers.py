"""The PyTorch peers' training speed, for `keras-memory bench speed --peers`.

Run in a process of its own (`python -m keras_memory.bench.peers KIND
--dim ...`), it trains lucidrains' PyTorch package for the kind on the
config given and prints one JSON line, so that its figures and ours are
one run's (benchmarks/README.md, "Peers", has the recipe and the reference
figures):

- `block_recurrent`: `block-recurrent-transformer-pytorch==0.4.4`, its
  `BlockRecurrentTransformer` (flash attention, one recurrent layer halfway
  up, as many state vectors as the window) trained through its
  `RecurrentTrainerWrapper` over the whole `segments * window` sequence.
- `memorizing`: `memorizing-transformers-pytorch==0.4.1`, its
  `MemorizingTransformer` (one kNN layer halfway up, 32 neighbours, faiss on
  the host, an XL memory of one window) trained one window at a time, the
  way its README trains, an optimizer step per window.

Install them beside the project, not into it: `pip install --target DIR
--no-deps block-recurrent-transformer-pytorch==0.4.4
memorizing-transformers-pytorch==0.4.1 einops einops-exts beartype faiss-cpu
joblib cloudpickle`, then `--peer-path DIR`. When a peer cannot be imported
the line says `skipped` and why; when its training step raises, `failed` and
the error (memorizing-transformers-pytorch 0.4.1 cannot train in bfloat16: its
kNN search hands bfloat16 queries to numpy).
"""

import argparse
import datetime
import importlib
import json
import statistics
import tempfile
import time

from keras_memory.backend.allocator import host_allocator
from keras_memory.memories import get_kind


def block_recurrent_step(torch, package, args, device):
    model = package.BlockRecurrentTransformer(
        num_tokens=args.vocab,
        dim=args.dim,
        depth=args.depth,
        dim_head=args.dim // args.heads,
        heads=args.heads,
        max_seq_len=args.window,
        block_width=args.window,
        num_state_vectors=args.window,
        recurrent_layers=(args.depth // 2,),
        use_flash_attn=True,
    ).to(device)
    trainer = package.RecurrentTrainerWrapper(model, xl_memories_dropout=0.0, state_dropout=0.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    tokens = torch.randint(0, args.vocab, (args.batch, args.window * args.segments + 1))
    tokens = tokens.to(device)

    def step():
        with autocast(torch, device, args):
            loss = trainer(tokens)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    return model, step


def memorizing_step(torch, package, args, device):
    model = package.MemorizingTransformer(
        num_tokens=args.vocab,
        dim=args.dim,
        depth=args.depth,
        dim_head=args.dim // args.heads,
        heads=args.heads,
        memorizing_layers=(args.depth // 2,),
        max_knn_memories=args.memory,
        num_retrieved_memories=32,
        xl_max_memories=args.window,
        knn_memories_directory=tempfile.mkdtemp(),
    ).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    tokens = torch.randint(0, args.vocab, (args.batch, args.window * args.segments + 1))
    tokens = tokens.to(device)
    memories = model.knn_memories_context(batch_size=args.batch).__enter__()

    def step():
        xl_memories = None
        for s in range(args.segments):
            window = tokens[:, s * args.window : (s + 1) * args.window + 1]
            with autocast(torch, device, args):
                loss, xl_memories = model(
                    window[:, :-1],
                    knn_memories=memories,
                    xl_memories=xl_memories,
                    labels=window[:, 1:],
                )
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()

    return model, step


def autocast(torch, device, args):
    enabled = args.precision == "mixed_bfloat16"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


# Each kind's peer: `(module, version, step builder)`.
PEERS = {
    "block_recurrent": ("block_recurrent_transformer_pytorch", "0.4.4", block_recurrent_step),
    "memorizing": ("memorizing_transformers_pytorch", "0.4.1", memorizing_step),
}


def measure(args):
    module, version, build = PEERS[args.kind]
    kind_options = get_kind(args.kind).option_names()
    record = {
        "benchmark": "speed",
        "peer": f"{module}=={version}",
        "kind": args.kind,
        "batch_size": args.batch,
        "segment_length": args.window * args.segments,
        "window_length": args.window,
        "precision": args.precision,
        **({"memory_size": args.memory} if "memory_size" in kind_options else {}),
    }
    try:
        import torch

        package = importlib.import_module(module)
    except ImportError as error:
        return {**record, "skipped": f"not installed ({error}); see keras_memory.bench.peers"}
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, step = build(torch, package, args, device)

    def wait():
        if device.type == "cuda":
            torch.cuda.synchronize()

    times = []
    try:
        for i in range(args.warmup + args.steps):
            start = time.perf_counter()
            step()
            wait()
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
    except Exception as error:  # the peer's own failure: reported, not ours to fix
        return {**record, "failed": f"{type(error).__name__}: {error}"}
    from keras_memory.bench.speed import model_flops_per_token

    step_time = statistics.median(times)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    tokens_per_s = args.batch * args.window * args.segments / step_time
    # Ours and the peer's work by one convention: the peers' keys and values
    # are one head's, so at the same sizes their tokens/s buy fewer FLOPs.
    flops = model_flops_per_token(trainable, args.depth, args.dim, args.window)
    return {
        **record,
        "trainable_params": trainable,
        "step_time_s": round(step_time, 4),
        "tokens_per_s": round(tokens_per_s, 1),
        "model_tflops_per_s": round(flops * tokens_per_s / 1e12, 4),
        "peak_device_bytes": torch.cuda.max_memory_allocated() if device.type == "cuda" else None,
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "allocator": host_allocator(),
        "date": datetime.date.today().isoformat(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=sorted(PEERS))
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--segments", type=int, default=4, help="Windows per sequence.")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--memory", type=int, default=16384, help="kNN memory entries.")
    parser.add_argument("--vocab", type=int, default=256)
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"])
    parser.add_argument("--steps", type=int, default=3, help="Timed steps.")
    parser.add_argument("--warmup", type=int, default=1, help="Untimed steps first.")
    print(json.dumps(measure(parser.parse_args(argv))), flush=True)


if __name__ == "__main__":
    main()
