"""The docstring corpus: clean sentences, deterministic, held-out sentences from unseen files."""

from __future__ import annotations

from trainonce.data.text import is_sentence, load_docstring_corpus, sentences, sentences_by_file, standard_library_root

ROOTS = [standard_library_root() / "json", standard_library_root() / "email"]


def test_sentence_rules_keep_prose_and_drop_code() -> None:
    assert is_sentence("Return the number of bytes written to the stream.")
    assert not is_sentence("Too short here.")
    assert not is_sentence("Call foo(x) == bar with >>> prompts in it, please.")
    assert not is_sentence("lowercase start is not a sentence in this corpus.")
    assert not is_sentence("Ends without a full stop and that is not accepted")
    docstring = "Encode the object as a string.\n\nExample::\n\n    >>> dumps([1, 2])\n\nThe result is plain text. Short."
    assert list(sentences(docstring)) == ["Encode the object as a string.", "The result is plain text."]


def test_corpus_is_deterministic_and_split_by_file() -> None:
    corpus = load_docstring_corpus(num_train=100, num_test=20, seed=0, roots=ROOTS)
    assert len(corpus.train) == 100 and len(corpus.test) == 20
    assert corpus == load_docstring_corpus(num_train=100, num_test=20, seed=0, roots=ROOTS)
    assert corpus.test != load_docstring_corpus(num_train=100, num_test=20, seed=1, roots=ROOTS).test
    file_of = {sentence: file for file, found in sentences_by_file(ROOTS).items() for sentence in found}
    assert not {file_of[s] for s in corpus.train} & {file_of[s] for s in corpus.test}
    assert len(set(corpus.train + corpus.test)) == 120
