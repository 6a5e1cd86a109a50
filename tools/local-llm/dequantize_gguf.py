"""Write an F32 copy of a quantized GGUF: same metadata, every tensor de-quantized to float32.

Why: llama.cpp multiplies quantized weights (Q4_1 here) against activations that it quantizes too (Q8_1),
so log-probabilities from the shipped GGUF differ from a float32 transformers run on the very same
de-quantized weights by more than the 1e-3 the perplexity parity test allows. Served from this copy,
llama.cpp computes in float32 on exactly the weights transformers loads from the original file.

    python dequantize_gguf.py <in.gguf> <out.gguf>
"""

from __future__ import annotations

import os
import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter, LlamaFileType
from gguf.constants import Keys
from gguf.quants import dequantize


def dequantize_file(src: str, dst: str) -> None:
    reader = GGUFReader(src)
    arch = reader.get_field(Keys.General.ARCHITECTURE)
    if arch is None:
        raise SystemExit(f"{src}: no {Keys.General.ARCHITECTURE} field; not a model GGUF")
    tmp = dst + ".part"
    writer = GGUFWriter(tmp, arch=str(arch.contents()))
    for field in reader.fields.values():
        # The writer sets the architecture and the GGUF.* header itself; the file type changes below.
        if field.name == Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        if field.name == Keys.General.FILE_TYPE:
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
    writer.add_file_type(LlamaFileType.ALL_F32)
    for t in reader.tensors:
        weights = dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
        writer.add_tensor(t.name, weights)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, dst)  # all or nothing: a half-written model never carries the final name


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: dequantize_gguf.py <in.gguf> <out.gguf>")
    dequantize_file(sys.argv[1], sys.argv[2])
