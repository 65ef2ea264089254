"""Megatron-LM's side of Herd's indexed-dataset interop test
(Tests/HerdTests/IndexedDatasetTests.swift): builds and reads datasets with
megatron-core's own code, so that Herd is checked against Megatron itself.

  build PREFIX DTYPE DOCS_JSON [--empty-as-no-sequence]
      Writes PREFIX.bin/.idx with IndexedDatasetBuilder, one add_document per
      document of DOCS_JSON (a JSON list of token lists), one sequence each.
      With --empty-as-no-sequence an empty document gets no sequence at all,
      as tools/preprocess_data.py does for an empty text.
  read PREFIX
      Reads PREFIX with IndexedDataset and prints one line
      "RESULT <json>": len, document_indices, dtype, sequences, documents.
  batch COMMANDS_JSON
      Runs a JSON list of commands, each an argument list as above, in one
      process (importing megatron-core and torch takes seconds) and prints
      one line "RESULT <json list of their results>".

Megatron's imports warn on stderr (Transformer Engine, Apex): the test
reads only stdout's RESULT line.
"""
import json
import sys

import numpy
from megatron.core.datasets.indexed_dataset import IndexedDataset, IndexedDatasetBuilder


def build(prefix, dtype_name, docs_path, empty_as_no_sequence):
    dtype = {"uint16": numpy.uint16, "int32": numpy.int32}[dtype_name]
    with open(docs_path) as f:
        docs = json.load(f)
    builder = IndexedDatasetBuilder(prefix + ".bin", dtype=dtype)
    for doc in docs:
        lengths = [] if (empty_as_no_sequence and not doc) else [len(doc)]
        builder.add_document(doc, lengths)
    builder.finalize(prefix + ".idx")
    return {"built": len(docs)}


def read(prefix):
    ds = IndexedDataset(prefix)
    document_indices = [int(i) for i in ds.document_indices]
    sequences = [ds[i].tolist() for i in range(len(ds))]
    # A document's tokens: its sequences concatenated.
    documents = [
        [t for s in sequences[document_indices[d]:document_indices[d + 1]] for t in s]
        for d in range(len(document_indices) - 1)
    ]
    return {
        "len": len(ds),
        "document_indices": document_indices,
        "dtype": ds.index.dtype.__name__,
        "sequences": sequences,
        "documents": documents,
    }


def run(args):
    if args[0] == "build" and len(args) >= 4:
        return build(args[1], args[2], args[3], "--empty-as-no-sequence" in args[4:])
    if args[0] == "read" and len(args) == 2:
        return read(args[1])
    sys.exit(
        "usage: megatron_indexed.py build PREFIX DTYPE DOCS_JSON [--empty-as-no-sequence]"
        " | read PREFIX | batch COMMANDS_JSON"
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "batch":
        with open(sys.argv[2]) as f:
            result = [run(command) for command in json.load(f)]
    else:
        result = run(sys.argv[1:])
    print("RESULT " + json.dumps(result))
