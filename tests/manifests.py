"""Small valid manifests (schema/manifest.py) for tests that need one without a build."""
from kokoro_build.schema.manifest import Artifact, Manifest, RunnableArtifact

FILE = {"path": "kokoro/config.json", "sha256": "0" * 64}


def runnable(frames: int, inputs=("valid_frames",), **fields) -> RunnableArtifact:
    """A frame-bucket artifact with these input names."""
    return RunnableArtifact(sizes={"frames": frames}, package=f"vocoder/frames_{frames}.mlpackage",
                            inputs=[{"name": n, "dtype": "float32", "shape": [1]} for n in inputs],
                            outputs=[{"name": "audio", "dtype": "float32", "shape": [1, frames * 600]}], **fields)


def artifact(package: str, verify_report: str, **fields) -> Artifact:
    """A verified artifact: only the fields a test reads are meaningful."""
    values = {"sizes": {"n": 8}, "package": package, "sha256": "0" * 64, "bytes": 1, "inputs": [], "outputs": [],
              "precision": "fp32", "compute_units": "cpu_and_ne", "verify_report": verify_report,
              "golden": verify_report.replace(".verify.json", ".golden.npz"),
              "verify": {"passed": True, "psnr_db": {}},
              "ane": {"analyzer": "static", "measured": False, "segments": 0,
                      "placement": {"predicted": True, "device": "cpu", "segments": 0}}}
    return Artifact.model_validate({**values, **fields})


def manifest(name: str, stages: dict) -> Manifest:
    """`stages`: {stage name: {kind, artifacts: [Artifact]}}."""
    return Manifest(name=name, weights=FILE, config={},
                    runtime={"config": FILE, "vocab": FILE, "voices": {}}, stages=stages)
