from framefarm.repositories.base import SpecCache
from tests.helpers import make_spec


def test_a_cached_spec_is_parsed_once_while_its_fingerprint_holds():
    cache, loads = SpecCache(), []
    spec = make_spec(2, job_id="a")

    def load():
        loads.append(1)
        return spec

    assert cache.get("a", "v1", load) is spec
    assert cache.get("a", "v1", load) is spec
    assert len(loads) == 1
    # a job saved again under its id has another fingerprint: its new spec is loaded
    assert cache.get("a", "v2", load) is spec and len(loads) == 2


def test_the_cache_keeps_only_the_newest_entries():
    cache = SpecCache(size=2)
    for job_id in ("a", "b", "c"):
        cache.remember(job_id, job_id, make_spec(1, job_id=job_id))
    reloaded = []
    cache.get("a", "a", lambda: reloaded.append("a") or make_spec(1, job_id="a"))
    cache.get("c", "c", lambda: reloaded.append("c") or make_spec(1, job_id="c"))
    assert reloaded == ["a"]  # the oldest was dropped, the newest kept
