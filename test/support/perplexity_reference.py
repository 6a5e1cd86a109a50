"""Direct transformers computation of response perplexity: the reference for the perplexity parity tests.

Input (JSON file, argv[1]): {"model": dir, "gguf_file": name or null, "bos": bool, "items": [{prompt, response}]}.
Output (stdout): JSON list, one perplexity per item, in item order.

Per item, exactly as docs/method.md ("Perplexity") defines it: the tokenizer's ids of prompt + response
(joined with no separator, no chat template), labels = those ids with the first len(ids of the prompt alone)
positions set to -100, perplexity = exp(the model's own causal-LM loss). `bos: true` puts the model's BOS
token in front of both tokenizations, as a tokenizer that adds one (Gemma's, Llama's) does. float32, eval mode,
one item per forward pass (no padding).
"""

from __future__ import annotations

import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main() -> None:
    spec = json.load(open(sys.argv[1], encoding="utf-8"))
    extra = {"gguf_file": spec["gguf_file"]} if spec.get("gguf_file") else {}
    tok = AutoTokenizer.from_pretrained(spec["model"], **extra)
    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32, **extra)
    model.eval()
    head = [tok.bos_token_id] if spec.get("bos") else []
    out: list[float] = []
    with torch.no_grad():
        for item in spec["items"]:
            ids = head + tok(item["prompt"] + item["response"])["input_ids"]
            boundary = len(head + tok(item["prompt"])["input_ids"])
            labels = list(ids)
            labels[:boundary] = [-100] * boundary
            loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss
            out.append(float(torch.exp(loss)))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
