"""pins.toml is the one source; the locks, the Makefile and the image build take their versions from it."""

import re

import pins
import pytest

MAKEFILE = pins.PINS_FILE.parents[1] / "Makefile"
# what a pinned value looks like when written out: a version, a requirement, a digest, a git commit
LITERAL_VERSION = re.compile(r"==\s*\d|\d+\.\d+|@sha256:|\b[0-9a-f]{40}\b")  # python3.10 counts too


@pytest.fixture(scope="module")
def the_pins():
    return pins.load()


LOCKS = pins.lock_names(pins.load())


def test_every_variant_and_dev_has_a_lock():
    assert sorted(p.stem for p in pins.LOCK_DIR.glob("*.txt")) == sorted(LOCKS)
    assert f"runtime-{pins.default_variant(pins.load())}" in LOCKS


@pytest.mark.parametrize("lock", LOCKS)
def test_lock_is_fresh(the_pins, lock):
    text = (pins.LOCK_DIR / f"{lock}.txt").read_text()
    assert f"# pins-digest: {pins.input_digest(the_pins, lock)}" in text, (
        f"env/locks/{lock}.txt is stale: pins.toml changed since `make lock`"
    )


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_is_locked_at_its_version(the_pins, lock):
    locked = pins.locked_versions((pins.LOCK_DIR / f"{lock}.txt").read_text())
    for requirement in pins.requirements(the_pins, lock):
        name, version = requirement.split("==")
        assert locked.get(pins.normalise(name)) == version, f"{name}: pinned {version}, locked {locked.get(name)}"


def test_locks_are_hash_checked():
    for lock in LOCKS:
        body = [line for line in (pins.LOCK_DIR / f"{lock}.txt").read_text().splitlines() if "==" in line]
        assert body and all(line.endswith("\\") for line in body), f"{lock}: every requirement carries hashes"


def test_lock_digest_tracks_pins(the_pins):
    lock = f"runtime-{pins.default_variant(the_pins)}"
    changed = {**the_pins, "runtime": {**the_pins["runtime"], "numpy": "9.9.9"}}
    assert pins.input_digest(changed, lock) != pins.input_digest(the_pins, lock)


def test_dev_lock_agrees_with_runtime_lock():
    default = f"runtime-{pins.default_variant(pins.load())}.txt"
    runtime = pins.locked_versions((pins.LOCK_DIR / default).read_text())
    dev = pins.locked_versions((pins.LOCK_DIR / "dev.txt").read_text())
    clashes = {n: (v, runtime[n]) for n, v in dev.items() if n in runtime and runtime[n] != v}
    assert not clashes


def test_variants_are_data(the_pins):
    for variant in pins.variants(the_pins):
        meta = the_pins["variants"][variant]
        assert {"torch", "torchaudio", "cuda", "min_driver", "description"} <= set(meta)
        assert f"torch=={meta['torch']}" in pins.requirements(the_pins, f"runtime-{variant}")
        assert not any(r.startswith(("cuda==", "min_driver==")) for r in pins.requirements(the_pins, f"runtime-{variant}"))


def test_key_facts(the_pins):
    assert the_pins["python"]["version"] == "3.10"
    assert the_pins["sources"]["fairseq"]["commit"].startswith("dd106d9")
    assert the_pins["sources"]["textlesslib"]["commit"].startswith("ba33d669")
    assert "@sha256:" in the_pins["base_image"]["ref"]
    assert len(the_pins["sources"]["fairseq"]["standin"]["sha256"]) == 64


def makefile_code() -> list[tuple[int, str]]:
    """(line number, text) of the Makefile with comments and `## help` texts taken out."""
    return [(n, line.split("#", 1)[0]) for n, line in enumerate(MAKEFILE.read_text().splitlines(), 1)]


def test_make_vars_carry_no_literal_versions_of_their_own(the_pins):
    text = pins.make_vars(the_pins)
    assert f"PIN_FAIRSEQ_COMMIT := {the_pins['sources']['fairseq']['commit']}" in text
    assert f"PIN_UV := {the_pins['tools']['uv']}" in text
    # the Makefile writes no version itself: each one it uses is a PIN_ variable that make-vars defines
    literal = [f"Makefile:{n}: {line.strip()}" for n, line in makefile_code() if LITERAL_VERSION.search(line)]
    assert not literal, "versions belong in env/pins.toml (PIN_ variables, `pins.py make-vars`):\n" + "\n".join(literal)
    defined = set(re.findall(r"^(PIN_\w+) :=", text, re.M))
    used = {name for _, line in makefile_code() for name in re.findall(r"\$\((PIN_\w+)\)", line)}
    assert used and used <= defined, f"the Makefile uses PIN_ variables make-vars does not define: {used - defined}"
    assert "uv==$(PIN_UV)" in MAKEFILE.read_text(), "uv is installed at its pin"


def test_build_args_are_the_pins(the_pins):
    for variant in pins.variants(the_pins):
        args = pins.build_args(the_pins, variant)
        meta = the_pins["variants"][variant]
        assert args["VARIANT"] == variant and args["BASE_IMAGE"] == the_pins["base_image"]["ref"]
        assert (args["TORCH_VERSION"], args["MIN_DRIVER"]) == (meta["torch"], meta["min_driver"])
        assert args["FAIRSEQ_COMMIT"] == the_pins["sources"]["fairseq"]["commit"]
        assert all(v and "\n" not in v for v in args.values())
    with pytest.raises(KeyError, match="no variant"):
        pins.build_args(the_pins, "no-such-variant")


def test_check_python_overrides(the_pins):
    reqs = pins.check_pythons(the_pins)
    assert "numpy==1.26.4" in reqs["3.12"]
    assert f"numpy=={the_pins['runtime']['numpy']}" in reqs["3.11"]
