"""A sweep's shared Numba cache follows the user cache (NEUROSIM_CACHE_DIR), not a hard-coded home folder."""

from neurosim.dse.sweep import numba_cache_dir


def test_the_sweeps_numba_cache_is_the_user_caches_numba_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("NEUROSIM_CACHE_DIR", str(tmp_path))
    assert numba_cache_dir() == str(tmp_path / "numba")
    assert (tmp_path / "numba").is_dir()


def test_a_numba_cache_dir_the_user_set_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    assert numba_cache_dir() == str(tmp_path / "mine")
