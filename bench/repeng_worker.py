"""repeng's side of ``bench/peers.py``, run by that script in its own venv (repeng 0.4.0 needs
numpy<2, which traitscope's venv cannot take; see ``make bench-peers-venv``).

Reads a JSON job (model directory, formatted prompts, labels, each fold's training rows, layers,
batch size), trains one repeng ``ControlVector`` (``pca_diff``, through a ``ControlModel``) per fold,
and writes ``vectors`` [folds, layers, dim] to a safetensors file with the training seconds in its
metadata. Imports nothing from traitscope.

    .venv-repeng/bin/python bench/repeng_worker.py JOB.json OUT.safetensors
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")


def config_for_v4(model_dir: str):  # noqa: ANN201
    """The model's config as transformers 4 reads it: version 5 writes the rotary settings as
    ``rope_parameters``, which version 4 ignores (it would silently use rope_theta 10000)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    rope = getattr(config, "rope_parameters", None)
    if isinstance(rope, dict) and "rope_theta" in rope:
        config.rope_theta = rope["rope_theta"]
        if rope.get("rope_type", "default") != "default":
            config.rope_scaling = {k: v for k, v in rope.items() if k != "rope_theta"}
    return config


def main(job_path: str, out_path: str) -> None:
    import numpy as np
    import repeng
    import torch
    import transformers
    from repeng import ControlModel, ControlVector, DatasetEntry
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

    job = json.loads(Path(job_path).read_text())
    torch.set_num_threads(int(job.get("threads", 1)))
    try:
        tokenizer = AutoTokenizer.from_pretrained(job["model_dir"])
    except ValueError:  # a transformers 5 tokenizer_config ("TokenizersBackend"): read tokenizer.json directly
        tokenizer = PreTrainedTokenizerFast.from_pretrained(job["model_dir"])
    model = AutoModelForCausalLM.from_pretrained(
        job["model_dir"], config=config_for_v4(job["model_dir"]), torch_dtype=torch.float32
    ).eval()
    layers = list(job["layers"])
    control = ControlModel(model, layers)
    texts, labels = job["texts"], job["labels"]
    # the same tokens as traitscope's capture (checked by the caller against its own ids)
    n_tokens = [len(tokenizer(t)["input_ids"]) for t in texts]
    start, cpu, per_fold = time.perf_counter(), time.process_time(), []
    for train in job["folds"]:
        pos = [texts[i] for i in train if labels[i] == 1]
        neg = [texts[i] for i in train if labels[i] == 0]
        dataset = [DatasetEntry(positive=p, negative=n) for p, n in zip(pos, neg, strict=False)]
        cv = ControlVector.train(
            control, tokenizer, dataset, hidden_layers=layers, batch_size=job["batch_size"], method="pca_diff"
        )
        per_fold.append(np.stack([cv.directions[la] for la in layers]))
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    meta = {
        "seconds": str(seconds),
        "cpu_seconds": str(cpu_seconds),
        "n_tokens": json.dumps(n_tokens),
        "versions": json.dumps(
            {
                "repeng": getattr(repeng, "__version__", "0.4.0"),
                "transformers": transformers.__version__,
                "numpy": np.__version__,
                "torch": torch.__version__,
            }
        ),
    }
    save_file({"vectors": torch.from_numpy(np.stack(per_fold)).float().contiguous()}, out_path, metadata=meta)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
