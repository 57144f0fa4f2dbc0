"""sources.py --local with a plain directory (not a git checkout): copied as is, symlinks kept."""

import json
import os

import pins
import sources


def plain_tree(root):
    """A plain export (git archive) with symlinks like fairseq dd106d9's, one of them dangling."""
    (root / "fairseq").mkdir(parents=True)
    (root / "fairseq" / "version.txt").write_text("1.0.0a0\n")
    st = root / "examples" / "kaldi_self_train" / "st"
    st.mkdir(parents=True)
    (st / "train.sh").write_text("#!/bin/sh\n")
    os.symlink("../../wsj/s5/steps", st / "steps")  # dangling: upstream points into a Kaldi tree
    os.symlink("train.sh", st / "run.sh")
    (root / "build").mkdir()  # a previous build's products are not source
    (root / "build" / "junk.o").write_text("")
    return root


def test_plain_directory_with_dangling_symlink_is_copied_unverified(tmp_path, capsys):
    src, dest = plain_tree(tmp_path / "export"), tmp_path / "out" / "fairseq-pristine"
    assert sources.main(["fairseq", str(dest), "--local", str(src)]) == 0
    st = dest / "examples" / "kaldi_self_train" / "st"
    assert st.joinpath("steps").is_symlink() and os.readlink(st / "steps") == "../../wsj/s5/steps"
    assert st.joinpath("run.sh").is_symlink() and (st / "run.sh").read_text() == "#!/bin/sh\n"
    assert (dest / "fairseq" / "version.txt").is_file() and not (dest / "build").exists()
    out = capsys.readouterr()
    record = json.loads(out.out)
    assert record == json.loads((dest / sources.RECORD).read_text())
    assert record["kind"] == "local-dir" and record["commit_verified"] is False
    assert record["commit"] == pins.load()["sources"]["fairseq"]["commit"]
    assert "commit NOT verified" in out.err
