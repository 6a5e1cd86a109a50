#!/usr/bin/env python3
"""GPU bench of the student path: the trainer's and the evaluator's own code on one machine.

1. writes a synthetic multilingual dataset manifest (3 strategies × --rows rows of prompt/response,
   lengths varying up to ~300 tokens) in a temp folder, in the dataset workflow's format;
2. trains with `polyglot_jobs.trainer.train` (LoRA, precision 'auto' = bf16 where supported,
   --steps steps, batch 8, max length 512, lr 2e-4, no warm-up, no intermediate checkpoint);
3. evaluates the merged model with `polyglot_jobs.evaluator.run` on the benchmark fixtures
   (jobs/tests/fixtures/bench, the default suite lighteval-v1, languages de and es, temperature 0);
4. prints one block of figures and, with --out DIR, writes them to DIR/gpu-student.json (with the
   trainer's training_summary.json and the evaluator's scores.json beside it).

Model: --model takes any reference the jobs take. Default: the real SmolLM2-135M-Instruct folder
(.tools/models/smollm2-135m-instruct) where it exists, else `random:.whl/smollm2-135m-config`
(the same architecture and tokenizer with random weights: the throughput and memory figures are the
same; the loss before/after is then only a "training lowers the loss" check, and the eval scores are
chance level).

Runs on CPU too (a smoke test: `python bench/gpu-student.py --steps 2`), and says that no GPU was
found. On the GPU machine run bench/gpu-student.sh, which installs the carried wheels first.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REAL_MODEL = ROOT / ".tools" / "models" / "smollm2-135m-instruct"
# Written by `bench/gpu-student.sh --prepare-wheels` (ignored, carried with the wheels): config and tokenizer only.
CONFIG_ONLY = ROOT / ".whl" / "smollm2-135m-config"
BENCH_DATA = ROOT / "jobs" / "tests" / "fixtures" / "bench"

# Nothing may be fetched: the GPU machine has no network, and neither do the tests here.
for _k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_k, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

try:  # installed (the ml venv's editable install) or on PYTHONPATH (gpu-student.sh); else from the tree
    import polyglot_jobs  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT / "jobs"))


# --- the synthetic dataset ---------------------------------------------------------------------------
# Per language: a few task prompts and a bank of answer sentences; a row's response strings together a
# random number of sentences, so lengths spread from a line to ~300 tokens once chat-formatted.
LANGS: dict[str, dict[str, list[str]]] = {
    "de": {
        "prompts": [
            "Erkläre, warum der Himmel am Abend rot wird.",
            "Schreibe eine kurze E-Mail an einen Kollegen, um ein Treffen zu verschieben.",
            "Wie funktioniert eine Wärmepumpe? Bitte einfach erklären.",
            "Fasse die Vorteile von öffentlichem Nahverkehr zusammen.",
            "Ein Zug fährt 240 km in 3 Stunden. Wie schnell ist er im Durchschnitt?",
        ],
        "sentences": [
            "Das Sonnenlicht legt am Abend einen längeren Weg durch die Atmosphäre zurück.",
            "Dabei wird blaues Licht stärker gestreut als rotes, so dass vor allem die roten Anteile bei uns ankommen.",
            "Eine Wärmepumpe entzieht der Umgebung Wärme und hebt sie mit einem Kältemittel auf ein höheres Temperaturniveau.",
            "Der Strombedarf ist dabei deutlich geringer als die Wärmemenge, die am Ende im Haus ankommt.",
            "Öffentliche Verkehrsmittel entlasten die Straßen und senken den Ausstoß von Kohlendioxid pro Person.",
            "Außerdem sind sie für Menschen ohne eigenes Auto oft die einzige bezahlbare Möglichkeit, mobil zu bleiben.",
            "Die Durchschnittsgeschwindigkeit ergibt sich aus Strecke geteilt durch Zeit, also 240 km durch 3 h gleich 80 km/h.",
            "Leider muss ich unser Treffen am Donnerstag verschieben, da ein Kundentermin dazwischengekommen ist.",
            "Würde dir stattdessen Freitagvormittag um zehn Uhr passen?",
            "Zusammenfassend lässt sich sagen, dass beide Effekte zusammenwirken.",
        ],
    },
    "es": {
        "prompts": [
            "Explica por qué las hojas de los árboles cambian de color en otoño.",
            "Escribe un mensaje breve para confirmar una reserva en un restaurante.",
            "¿Qué diferencia hay entre el clima y el tiempo atmosférico?",
            "Resume las ventajas de aprender un segundo idioma.",
            "Una tienda vende 12 cuadernos a 3 euros cada uno. ¿Cuánto recauda?",
        ],
        "sentences": [
            "En otoño los árboles dejan de producir clorofila, el pigmento verde de las hojas.",
            "Al desaparecer la clorofila se hacen visibles los carotenoides, de color amarillo y naranja.",
            "El tiempo describe las condiciones de un día concreto, mientras que el clima es el promedio de muchos años.",
            "Aprender otro idioma mejora la memoria y abre oportunidades laborales en otros países.",
            "También facilita comprender otras culturas desde su propia perspectiva.",
            "Multiplicamos 12 cuadernos por 3 euros y obtenemos 36 euros en total.",
            "Le escribo para confirmar la reserva para cuatro personas el sábado a las nueve de la noche.",
            "Le agradecería que nos asignaran una mesa cerca de la ventana, si es posible.",
            "En resumen, se trata de un proceso natural que se repite cada año.",
            "Por lo tanto, la respuesta correcta depende del periodo de tiempo que se considere.",
        ],
    },
    "fr": {
        "prompts": [
            "Pourquoi la mer est-elle salée ?",
            "Rédige une courte annonce pour vendre un vélo d'occasion.",
            "Explique le principe de la photosynthèse.",
            "Quels conseils donnerais-tu à quelqu'un qui commence à courir ?",
        ],
        "sentences": [
            "Les rivières transportent des minéraux arrachés aux roches jusqu'à la mer.",
            "L'eau s'évapore, mais les sels restent, si bien que leur concentration augmente au fil du temps.",
            "La photosynthèse permet aux plantes de transformer la lumière, l'eau et le dioxyde de carbone en sucres.",
            "Elle libère de l'oxygène, indispensable à la plupart des êtres vivants.",
            "Vends vélo de ville en bon état, révisé l'an dernier, avec panier et éclairage.",
            "Il vaut mieux commencer lentement, par exemple trois sorties de vingt minutes par semaine.",
            "Une bonne paire de chaussures et un peu d'échauffement réduisent le risque de blessure.",
            "En résumé, la régularité compte davantage que l'intensité.",
        ],
    },
    "ja": {
        "prompts": [
            "なぜ空は青いのですか。",
            "会議の日程を変更してもらうための丁寧なメールを書いてください。",
            "リサイクルの利点を簡単に説明してください。",
            "りんごが3個ずつ入った袋が7つあります。りんごは全部で何個ですか。",
        ],
        "sentences": [
            "太陽の光が大気中の分子にぶつかると、波長の短い青い光が強く散乱されます。",
            "そのため、私たちの目には空全体が青く見えます。",
            "リサイクルは資源の消費を減らし、ごみの量を少なくすることにつながります。",
            "また、新しい製品を作るためのエネルギーも節約できます。",
            "大変恐縮ですが、来週の会議の日程を変更していただけないでしょうか。",
            "ご都合のよい日時をお知らせいただければ幸いです。",
            "3個が7袋あるので、3かける7で21個になります。",
            "以上の理由から、このように考えることができます。",
        ],
    },
    "ar": {
        "prompts": [
            "لماذا نحتاج إلى شرب الماء يوميًا؟",
            "اكتب رسالة قصيرة لشكر صديق على مساعدته.",
            "ما فوائد القراءة قبل النوم؟",
        ],
        "sentences": [
            "يشكل الماء الجزء الأكبر من جسم الإنسان ويساعد على تنظيم درجة الحرارة.",
            "كما ينقل العناصر الغذائية إلى الخلايا ويخلص الجسم من الفضلات.",
            "أشكرك من كل قلبي على وقوفك بجانبي في الأسبوع الماضي.",
            "تساعد القراءة على الاسترخاء وتقلل من التوتر قبل النوم.",
            "وهي أيضًا طريقة ممتعة لتعلم كلمات وأفكار جديدة.",
            "باختصار، إنها عادة بسيطة لكن فائدتها كبيرة.",
        ],
    },
    "id": {
        "prompts": [
            "Jelaskan mengapa kita perlu tidur yang cukup.",
            "Tuliskan pesan singkat untuk mengundang teman ke acara ulang tahun.",
            "Sebuah buku berharga 45 ribu rupiah. Berapa harga 4 buku?",
        ],
        "sentences": [
            "Saat tidur, tubuh memperbaiki sel dan otak menyimpan ingatan dari hari itu.",
            "Kurang tidur dapat menurunkan konsentrasi dan daya tahan tubuh.",
            "Aku ingin mengundangmu ke pesta ulang tahunku pada hari Sabtu pukul tujuh malam.",
            "Harga empat buku adalah 4 kali 45 ribu, yaitu 180 ribu rupiah.",
            "Dengan demikian, kebiasaan ini sangat penting untuk kesehatan.",
        ],
    },
}
TRANSLATE_PROMPT = {
    "de": "Übersetze ins Deutsche:",
    "es": "Traduce al español:",
    "fr": "Traduis en français :",
    "ja": "日本語に翻訳してください：",
    "ar": "ترجم إلى العربية:",
    "id": "Terjemahkan ke dalam bahasa Indonesia:",
}
ENGLISH = [
    "The meeting has been moved to Friday morning because the client is travelling.",
    "Please remember to bring your identity card and the signed form.",
    "The library is closed on public holidays but open late on Thursdays.",
    "Regular exercise improves sleep, mood and concentration.",
    "The bridge was built in 1890 and restored after the flood.",
    "Our team will send the final report before the end of the month.",
]
STRATEGIES = ("generate", "translate", "respond")


def synth_rows(strategy: str, n: int, seed: int, count_tokens: Any) -> list[dict[str, Any]]:
    """`count_tokens(prompt, response)`: the row's length once chat-formatted, in the student's tokens.
    Each row draws a target length (40 to 300 tokens, skewed short as in real SFT data) and takes
    answer sentences until the next one would pass it."""
    rng = random.Random(f"{strategy}-{seed}")
    langs = sorted(LANGS)
    rows = []
    for i in range(n):
        lang = langs[i % len(langs)]
        bank = LANGS[lang]
        if strategy == "translate":
            prompt = f"{TRANSLATE_PROMPT[lang]}\n{' '.join(rng.sample(ENGLISH, rng.randint(1, 3)))}"
        elif strategy == "respond":
            prompt = f"{rng.choice(bank['sentences'])}\n\n{rng.choice(bank['prompts'])}"
        else:
            prompt = rng.choice(bank["prompts"])
        target = 40 + min(260, int(rng.expovariate(1 / 90)))
        body = rng.choice(bank["sentences"])
        while True:
            longer = f"{body} {rng.choice(bank['sentences'])}"
            if count_tokens(prompt, longer) > target:
                break
            body = longer
        rows.append({
            "id": f"{strategy}-{i:04d}",
            "strategy": strategy,
            "language": lang,
            "prompt": prompt,
            "response": body,
            "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": body}],
        })
    return rows


def write_dataset(root: Path, per_strategy: int, tokenizer: Any, seed: int = 0) -> str:
    """A dataset manifest in the dataset workflow's format (as jobs/tests/conftest.py writes), local shards."""

    def count_tokens(prompt: str, response: str) -> int:
        msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
        return len(tokenizer(tokenizer.apply_chat_template(msgs, tokenize=False))["input_ids"])

    shards = root / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"perStrategy": {}}
    for s in STRATEGIES:
        path = shards / f"{s}-00000.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for r in synth_rows(s, per_strategy, seed, count_tokens):
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        manifest["perStrategy"][s] = {"shards": [str(path)]}
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return str(root / "manifest.json")


# --- helpers -----------------------------------------------------------------------------------------
def resolve_model(arg: str | None) -> str:
    """A relative path (plain or after `random:`) is taken from the repo root, so the script runs from anywhere."""
    if not arg:
        if (REAL_MODEL / "config.json").exists() and any(REAL_MODEL.glob("*.safetensors")):
            return str(REAL_MODEL)
        return f"random:{CONFIG_ONLY}"
    prefix, ref = ("random:", arg[len("random:"):]) if arg.startswith("random:") else ("", arg)
    path, sep, frag = ref.partition("#")
    if path and not path.startswith(("/", "s3://", "file://")) and (ROOT / path).exists():
        path = str((ROOT / path).resolve())
    return f"{prefix}{path}{sep}{frag}"


def token_stats(manifest: str, tok: Any) -> dict[str, Any]:
    """Lengths of the chat-formatted training texts in the student's tokens (what max length meets)."""
    from polyglot_jobs.data import read_manifest_rows, to_text

    lens = sorted(len(tok(t)["input_ids"]) for t in to_text(read_manifest_rows(manifest), tok))
    return {"rows": len(lens), "min": lens[0], "median": lens[len(lens) // 2],
            "p90": lens[int(len(lens) * 0.9)], "max": lens[-1], "mean": round(sum(lens) / len(lens), 1)}


def gib(n: float | None) -> str:
    return "n/a" if n is None else f"{n / 2**30:.2f} GiB"


def fmt(v: Any, spec: str = ".4f") -> str:
    return "n/a" if v is None else format(v, spec)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="student reference (default: the real SmolLM2 folder, else random:.whl/smollm2-135m-config)")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rows", type=int, default=64, help="rows per strategy (3 strategies)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-seq-length", type=int, default=512)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--method", default="lora", choices=["lora", "qlora", "full"])
    ap.add_argument("--optimizer", default="adamw_torch",
                    help="adamw_torch by default: the production default adamw_8bit needs bitsandbytes, which is not carried")
    ap.add_argument("--extra", default="{}", help="JSON object merged into the trainer's config, e.g. '{\"gradientCheckpointing\": false}'")
    ap.add_argument("--languages", default="de,es")
    ap.add_argument("--eval-limit", type=int, default=None, help="items per task (default: all of the fixtures)")
    ap.add_argument("--data", default=str(BENCH_DATA), help="benchmark data root for the evaluator")
    ap.add_argument("--skip-eval", action="store_true")
    ap.add_argument("--out", default=None, help="folder for gpu-student.json (+ training_summary.json, scores.json)")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (dataset, trained model)")
    a = ap.parse_args()

    import torch

    from polyglot_jobs.contract import JobContext
    from polyglot_jobs.evaluator import run as eval_run
    from polyglot_jobs.models import load_tokenizer
    from polyglot_jobs.trainer import train

    model_ref = resolve_model(a.model)
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else "CPU (no GPU found)"
    print(f"[gpu-student] device: {device}", flush=True)
    if not cuda:
        print("[gpu-student] no GPU found: running on CPU; the figures are a smoke test, not a measurement", flush=True)
    print(f"[gpu-student] model: {model_ref}"
          + ("  (random weights: throughput/memory figures valid, scores chance level)" if model_ref.startswith("random:") else ""),
          flush=True)

    work = Path(tempfile.mkdtemp(prefix="gpu-student-"))
    figures: dict[str, Any] = {}
    try:
        tok = load_tokenizer(model_ref)
        manifest = write_dataset(work / "dataset", a.rows, tok)
        stats = token_stats(manifest, tok)
        print(f"[gpu-student] dataset: {stats}", flush=True)

        config = {
            "student": model_ref,
            "method": a.method,
            "maxSteps": a.steps,
            "perDeviceBatchSize": a.batch,
            "gradientAccumulation": 1,
            "maxSeqLength": a.max_seq_length,
            "learningRate": a.lr,
            "warmupSteps": 0,
            "saveSteps": 1_000_000,  # no intermediate checkpoint inside the timed loop
            "trainSize": 3 * a.rows,
            "precision": "auto",  # bf16 where the GPU supports it, fp16 otherwise, fp32 on CPU
            "optimizer": a.optimizer,
            "save": ["merged"],
            **json.loads(a.extra),
        }
        train_out = work / "train"
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        tres = train(JobContext(output_uri=str(train_out), inputs={"dataset": manifest}, config=config, cell_id="gpu-student"))
        train_wall = time.perf_counter() - t0
        peak_train = torch.cuda.max_memory_allocated() if cuda else None
        summary = json.loads((train_out / "training_summary.json").read_text())
        tokens = summary.get("tokens_seen") or 0
        runtime = summary.get("train_runtime_s")

        figures.update({
            "device": device,
            "cuda": cuda,
            "model": model_ref,
            "random_weights": model_ref.startswith("random:"),
            "versions": {**summary.get("versions", {}), "torch_cuda": torch.version.cuda},
            "dataset_tokens": stats,
            "train_config": config,
            "precision": summary.get("precision"),
            "optimizer": summary.get("optimizer"),
            "notes": summary.get("notes"),
            "global_step": summary.get("global_step"),
            "examples": summary.get("examples"),
            "tokens_seen": tokens,
            "train_runtime_s": runtime,
            "train_tokens_per_s": (tokens / runtime) if runtime else None,
            "train_wall_s": train_wall,
            "peak_gpu_memory_bytes": peak_train,
            "peak_gpu_memory_bytes_summary": summary.get("peak_gpu_memory_bytes"),
            "loss_before": tres.metrics.get("loss_before"),
            "loss_after": tres.metrics.get("loss_after"),
            "train_loss": tres.metrics.get("train_loss"),
            "loss_curve": [round(c["loss"], 4) for c in summary.get("loss_curve", [])],
        })

        if not a.skip_eval:
            eval_out = work / "eval"
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            langs = [x for x in a.languages.split(",") if x]
            ecfg: dict[str, Any] = {"languages": langs, "temperature": 0}
            if a.eval_limit:
                ecfg["limit"] = a.eval_limit
            t0 = time.perf_counter()
            eres = eval_run(JobContext(output_uri=str(eval_out),
                                       inputs={"model": str(train_out / "model"), "data": str(Path(a.data).resolve())},
                                       config=ecfg, cell_id="gpu-student"))
            figures["eval_wall_s"] = time.perf_counter() - t0
            figures["eval_peak_gpu_memory_bytes"] = torch.cuda.max_memory_allocated() if cuda else None
            figures["eval_scores"] = {k[len("score:"):]: v for k, v in eres.metrics.items() if k.startswith("score:")}
            figures["eval_tasks"] = {k: v for k, v in eres.metrics.items()
                                     if not k.startswith("score:") and not k.endswith((":stderr", ":n"))}

        if a.out:
            out = Path(a.out)
            out.mkdir(parents=True, exist_ok=True)
            (out / "gpu-student.json").write_text(json.dumps(figures, indent=2, default=str))
            shutil.copy(train_out / "training_summary.json", out / "training_summary.json")
            if (work / "eval" / "scores.json").exists():
                shutil.copy(work / "eval" / "scores.json", out / "scores.json")
    finally:
        if a.keep:
            print(f"[gpu-student] kept {work}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)

    f = figures
    lines = [
        "================ gpu-student figures ================",
        f"device              {f['device']}",
        f"model               {f['model']}" + ("  [random weights]" if f["random_weights"] else ""),
        f"versions            " + ", ".join(f"{k} {v}" for k, v in f["versions"].items()),
        f"dataset             {f['examples']} rows; tokens/row min {f['dataset_tokens']['min']}, "
        f"median {f['dataset_tokens']['median']}, p90 {f['dataset_tokens']['p90']}, max {f['dataset_tokens']['max']}",
        f"train               {f['global_step']} steps, batch {a.batch}, max length {a.max_seq_length}, "
        f"{a.method}, {f['precision']}, {f['optimizer']}",
        f"train tokens/s      {fmt(f['train_tokens_per_s'], ',.0f')}  ({f['tokens_seen']:,} input tokens seen / "
        f"{fmt(f['train_runtime_s'], '.2f')} s train_runtime)",
        f"train wall          {f['train_wall_s']:.2f} s  (load, train, probe losses, merge, save)",
        f"peak GPU memory     {gib(f['peak_gpu_memory_bytes'])} (max_memory_allocated, train); "
        f"summary {gib(f['peak_gpu_memory_bytes_summary'])}"
        + ("" if f["cuda"] else "  [no GPU]"),
        f"loss before/after   {fmt(f['loss_before'])} -> {fmt(f['loss_after'])}  (probe batch; train_loss {fmt(f['train_loss'])})",
    ]
    if "eval_wall_s" in f:
        lines += [
            f"eval wall           {f['eval_wall_s']:.2f} s  (peak GPU memory {gib(f['eval_peak_gpu_memory_bytes'])})",
            "eval scores         " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(f["eval_scores"].items())),
            "eval tasks          " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(f["eval_tasks"].items())),
        ]
    if f.get("notes"):
        lines.append(f"notes               {'; '.join(f['notes'])}")
    if a.out:
        lines.append(f"written             {Path(a.out) / 'gpu-student.json'}")
    lines.append("=====================================================")
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
