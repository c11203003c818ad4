"""Where the tensors live, how that machine is named, and in which precision the matrix products run."""

from __future__ import annotations

import platform
import shutil

import torch

from seq2seq.distributed import World
from seq2seq.errors import UserError


def pick_device(name: str) -> torch.device:
    if name not in ("auto", "cpu", "cuda"):
        raise UserError(f"--device must be auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but torch sees no CUDA device")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":  # fp32 products on the tensor cores in TF32, by cuBLAS as by cuDNN (its default)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    return torch.device(name)


def describe(device: torch.device, world: World = World()) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return name if world.size == 1 else f"{world.size} processes x {name}"


def require_compiler(device: torch.device) -> None:
    """train.compile on the CPU: inductor writes C++ and builds it with a compiler, which must be
    there before anything is written (on CUDA it writes Triton, which torch brings)."""
    if device.type != "cpu":
        return
    from torch._inductor import config as inductor

    cxx = inductor.cpp.cxx[1]
    if shutil.which(cxx) is None:
        raise UserError(f"train.compile=true on the CPU needs the C++ compiler inductor calls ({cxx}, not found): "
                        "install it (apt install g++) or leave train.compile false")


def fast_bf16(device: torch.device) -> bool:
    """Whether the device multiplies bf16 matrices natively: a CUDA GPU that supports bf16, or
    a CPU with AVX512-BF16 or AMX instructions (as torch reads them off the CPU)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto` -> bf16 where the device is fast at it, fp32 elsewhere; fp32 and bf16 stay."""
    if precision == "auto":
        return "bf16" if fast_bf16(device) else "fp32"
    return precision


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """bf16 autocast for a resolved precision of bf16: matrix products and their activations in
    bf16, weights, optimizer state and reductions such as the loss in fp32. fp32: a no-op."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def precision_label(model: torch.nn.Module, precision: str, device: torch.device) -> str:
    """What a resolved precision runs in on this model and device: fp32, tf32 (fp32 on CUDA, see
    pick_device) or bf16; on CUDA bf16 names the nn.RNN/LSTM/GRU layers, which run outside its
    autocast (models.base.run_rnn), e.g. "bf16 (tf32: encoder)"."""
    if device.type != "cuda":
        return precision
    fp32 = "tf32" if torch.backends.cuda.matmul.allow_tf32 else "fp32"
    rnns = [name for name, m in model.named_modules() if isinstance(m, torch.nn.RNNBase)]
    if precision == "fp32":
        return fp32
    return f"bf16 ({fp32}: {', '.join(rnns)})" if rnns else "bf16"
