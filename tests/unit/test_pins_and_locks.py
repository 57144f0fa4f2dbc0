"""pins.toml is the one source; the locks must match it."""

import pins
import pytest


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


def test_make_vars_carry_no_literal_versions_of_their_own(the_pins):
    text = pins.make_vars(the_pins)
    assert f"PIN_FAIRSEQ_COMMIT := {the_pins['sources']['fairseq']['commit']}" in text
    assert f"PIN_UV := {the_pins['tools']['uv']}" in text


def test_check_python_overrides(the_pins):
    reqs = pins.check_pythons(the_pins)
    assert "numpy==1.26.4" in reqs["3.12"]
    assert f"numpy=={the_pins['runtime']['numpy']}" in reqs["3.11"]
