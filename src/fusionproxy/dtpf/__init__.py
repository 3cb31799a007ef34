"""DTPF (paper `dtpf.txt`): a text-guided teacher distilled into a small student that needs no text.

Modules: `blocks` (MDTA, GDFN, OCA), `network` (the dual-stream fusion network, whose student form is
registered as `dtpf_student` in `fusionproxy.students.dtpf_student`), `teacher` (the text-guided teacher, its saving and loading), `text` (event labels, the
degradation estimator, sentence embeddings), `losses` (Eq. 12-19), `data` (training pairs), `train`
(`train_teacher`, `distill`). Submodules are imported on use, so importing the network stays light.
"""
