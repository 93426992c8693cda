"""The ExecuTorch target: each artifact also as a `.pte` program (XNNPACK delegate).

  lower.py    surgered stage -> torch.export -> XNNPACK partition -> .pte (+ op census)
  program.py  load and run a .pte with the ExecuTorch runtime (verify, the chain)
  verify.py   doit action: the .pte against its torch twin, PSNR per output

The seed's attempt (ExecuTorch 0.7) met stft/istft/angle/randn outside Core ATen and
a full decoder that gave NaN on XNNPACK. The Core ML surgery already removes the
first (conv STFT, noise as inputs, no complex ops); with executorch 1.5.1 the real
vocoder runs without NaN (BENCHMARKS.md "ExecuTorch").
"""
