"""musicnn's own TF-1 graph, the reference of tests/test_musicnn.py, run as a script in a
subprocess (TF_USE_LEGACY_KERAS=1 must be set before TensorFlow is imported, and graph
mode is process-wide):

    python musicnn_tf_reference.py inputs.npz outputs.npz MTT_musicnn MSD_vgg ...

Builds each model with musicnn's `models.define_model` (its models.py loaded by file
path), restores the checkpoint with `tf.compat.v1.train.Saver` as its extractor does,
and writes, for every array `x_*` of inputs.npz (batch, frames, 96), the taggram
(sigmoid of the logits) as `<model>/<name>` and, for musicnn, the penultimate layer as
`<model>/<name>/penultimate`. The VGG models are fed only 187-frame inputs.
"""

import importlib.metadata
import importlib.util
import sys

import numpy as np
import tensorflow as tf


def main(inputs: str, outputs: str, *checkpoints: str) -> None:
    tf.compat.v1.disable_eager_execution()
    dist = importlib.metadata.distribution("musicnn")
    spec = importlib.util.spec_from_file_location(
        "musicnn_models", str(dist.locate_file("musicnn/models.py")))
    models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(models)
    feeds = dict(np.load(inputs))
    out = {}
    for checkpoint in checkpoints:
        graph = tf.Graph()
        with graph.as_default():
            x = tf.compat.v1.placeholder(tf.float32, [None, None, 96])
            if "vgg" in checkpoint:
                x = tf.compat.v1.placeholder(tf.float32, [None, 187, 96])
            is_training = tf.compat.v1.placeholder(tf.bool)
            built = models.define_model(x, is_training, checkpoint, 50)
            fetch = {"taggram": tf.nn.sigmoid(built[0])}
            if "musicnn" in checkpoint:
                fetch["penultimate"] = built[-1]
            with tf.compat.v1.Session() as sess:
                prefix = str(dist.locate_file(f"musicnn/{checkpoint}/.index"))[:-len(".index")]
                tf.compat.v1.train.Saver().restore(sess, prefix)
                for name, value in feeds.items():
                    if "vgg" in checkpoint and value.shape[1] != 187:
                        continue
                    got = sess.run(fetch, {x: value, is_training: False})
                    out[f"{checkpoint}/{name}"] = got["taggram"]
                    if "penultimate" in got:
                        out[f"{checkpoint}/{name}/penultimate"] = got["penultimate"]
    np.savez(outputs, **out)


if __name__ == "__main__":
    main(*sys.argv[1:])
