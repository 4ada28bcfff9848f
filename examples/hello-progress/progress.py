"""Simulates a training step: prints progress for a few seconds, writes its results."""

import os
import pathlib
import time

epochs = int(os.environ.get("EPOCHS", "5"))
print(f"starting training for {epochs} epochs", flush=True)
loss = 1.0
for epoch in range(1, epochs + 1):
    time.sleep(1)
    loss *= 0.6
    print(f"epoch {epoch}/{epochs}  loss={loss:.4f}")
results = pathlib.Path("results")
results.mkdir(exist_ok=True)
(results / "summary.txt").write_text(f"final loss {loss:.4f}\n")
print("wrote results/summary.txt")
