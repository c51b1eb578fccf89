"""The instruction corpora the embedded model is trained on, built offline from installed
packages: WordNet 3.0 (:mod:`dlmpaper.corpora.wordnet`) and the general corpus
(:mod:`dlmpaper.corpora.general`). Both ship gzipped JSONL with licenses and SHA256SUMS.
"""
