"""The corpus builder: company repositories to a fill-in-the-middle training set, a dev set and an exam.

Stages, one module each: discover -> filters -> secrets -> dedup -> split -> spans -> render -> write,
run by `pipeline.build`; `cli` is `inhouse corpus build|stats`. See docs/corpus.md.
"""
