"""Hub fusion maths: triangulation, meridian convergence, honest ellipses, association, refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge.geodesy import destination, distance_bearing
from edge.messages import AlarmMessage
from hub.association import AssociationSettings, associate
from hub.fires import Fuser, FusionSettings, build_fire
from hub.fusion import Observation, inside_ellipse, triangulate, wedge_ring
from hub.synth import alarm_payload

TOWER_A = (41.08, 121.90)


def _obs(
    key: str, tower: tuple[float, float], fire: tuple[float, float], **kw: object
) -> Observation:
    distance_m, bearing_deg = distance_bearing(*tower, *fire)
    noise = float(kw.pop("noise_deg", 0.0))  # type: ignore[arg-type]
    fields: dict[str, object] = {
        "key": key,
        "tower_id": f"T-{key}",
        "tower_lat_deg": tower[0],
        "tower_lon_deg": tower[1],
        "bearing_deg": (bearing_deg + noise) % 360.0,
        "bearing_sigma_deg": 0.05,
        "time_s": 0.0,
        "range_source": "earth",
        "range_m": distance_m,
        "range_min_m": 0.7 * distance_m,
        "range_max_m": 3.0 * distance_m,
    }
    fields.update(kw)
    return Observation(**fields)  # type: ignore[arg-type]


def _two_towers() -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
    tower_b = destination(*TOWER_A, 90.0, 15_000.0)
    fire = destination(*destination(*TOWER_A, 90.0, 7_500.0), 0.0, 6_614.4)
    return TOWER_A, tower_b, fire


def test_exact_bearings_meet_at_the_fire() -> None:
    a, b, fire = _two_towers()
    fix = triangulate([_obs("a", a, fire), _obs("b", b, fire)])
    assert fix is not None
    assert distance_bearing(fix.lat_deg, fix.lon_deg, *fire)[0] < 0.5
    assert 90.0 < fix.min_angle_deg < 100.0
    assert fix.ellipse.semi_major_m < 30.0


def test_meridian_convergence_is_taken_into_account() -> None:
    # Towers 60 km apart east-west: true north differs by ~0.45° between them. Drawing
    # both bearings against one north would miss by hundreds of metres.
    west = (41.10, 121.70)
    east = destination(*west, 90.0, 60_000.0)
    fire = destination(*destination(*west, 90.0, 30_000.0), 0.0, 25_000.0)
    fix = triangulate([_obs("w", west, fire), _obs("e", east, fire)])
    assert fix is not None
    assert distance_bearing(fix.lat_deg, fix.lon_deg, *fire)[0] < 2.0


def test_ellipse_is_honest_at_the_stated_noise() -> None:
    a, b, fire = _two_towers()
    rng = np.random.default_rng(7)
    trials = 300
    inside = 0
    for _ in range(trials):
        fix = triangulate(
            [
                _obs("a", a, fire, noise_deg=rng.normal(0.0, 0.05)),
                _obs("b", b, fire, noise_deg=rng.normal(0.0, 0.05)),
            ]
        )
        assert fix is not None
        inside += inside_ellipse(fix, *fire)
    # 95 % nominal; 300 trials give a binomial 3σ of ±3.8 %.
    assert 0.91 <= inside / trials <= 0.99


def test_lidar_range_tightens_the_fix_along_the_ray() -> None:
    a, b, fire = _two_towers()
    bearings_only = triangulate([_obs("a", a, fire), _obs("b", b, fire)])
    d = distance_bearing(*a, *fire)[0]
    with_lidar = triangulate(
        [
            _obs("a", a, fire, range_source="lidar", range_min_m=d - 10.0, range_max_m=d + 10.0),
            _obs("b", b, fire),
        ]
    )
    assert bearings_only is not None and with_lidar is not None
    assert with_lidar.ellipse.semi_minor_m < bearings_only.ellipse.semi_minor_m
    assert with_lidar.dof == 1


def test_one_bearing_without_range_gives_no_point() -> None:
    a, _, fire = _two_towers()
    assert triangulate([_obs("a", a, fire)]) is None


def test_shallow_crossing_is_refused_as_poor_geometry() -> None:
    a = TOWER_A
    b = destination(*a, 90.0, 2_000.0)
    fire = destination(*a, 5.0, 12_000.0)  # the rays meet at about 9°
    alarms = [
        AlarmMessage.model_validate(
            alarm_payload(
                alarm_id=f"x{k}",
                seq=1,
                tower_id=f"T{k}",
                tower_lat=t[0],
                tower_lon=t[1],
                fire_lat=fire[0],
                fire_lon=fire[1],
            )
        )
        for k, t in enumerate((a, b))
    ]
    fire_msg = build_fire(alarms, FusionSettings())
    assert fire_msg.geometry == "poor"
    assert fire_msg.position is None
    assert fire_msg.note is not None and "poor geometry" in fire_msg.note
    assert fire_msg.range_source == "earth"


def test_single_tower_states_a_wedge_not_a_point() -> None:
    a, _, fire = _two_towers()
    alarm = AlarmMessage.model_validate(
        alarm_payload(
            alarm_id="s1",
            seq=1,
            tower_id="T1",
            tower_lat=a[0],
            tower_lon=a[1],
            fire_lat=fire[0],
            fire_lon=fire[1],
        )
    )
    fire_msg = build_fire([alarm], FusionSettings())
    assert fire_msg.position is None and fire_msg.uncertainty is None
    assert fire_msg.geometry == "bearing_only"
    ring = fire_msg.area.coordinates[0]
    assert ring[0] == ring[-1] and len(ring) > 10
    # The truth is inside the wedge's bearing span as seen from the tower.
    span = [distance_bearing(*a, lat, lon)[1] for lon, lat in ring[:-1]]
    assert min(span) - 1e-6 <= distance_bearing(*a, *fire)[1] <= max(span) + 1e-6


def test_wedge_ring_is_counter_clockwise() -> None:
    a, _, fire = _two_towers()
    ring = wedge_ring(_obs("a", a, fire), 40_000.0)
    area2 = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(ring, ring[1:], strict=False))
    assert area2 > 0


def test_two_fires_seen_by_two_towers_are_paired_correctly() -> None:
    a, b, fire1 = _two_towers()
    fire2 = destination(*fire1, 160.0, 4_000.0)
    observations = [
        _obs("a1", a, fire1, tower_id="A"),
        _obs("b1", b, fire1, tower_id="B"),
        _obs("a2", a, fire2, tower_id="A"),
        _obs("b2", b, fire2, tower_id="B"),
    ]
    groups = associate(observations, AssociationSettings())
    keys = sorted(tuple(sorted(o.key for o in g)) for g in groups)
    # Four rays cross in four places; the gate alone cannot tell them apart here, but a
    # tower never contributes twice to one fire.
    assert all(len({o.tower_id for o in g}) == len(g) for g in groups)
    assert sum(len(g) for g in groups) == 4
    assert len(keys) == 2


def test_rays_that_cross_outside_the_range_interval_stay_apart() -> None:
    a, b, fire = _two_towers()
    d = distance_bearing(*a, *fire)[0]
    far_only = _obs("a", a, fire, range_min_m=2.0 * d, range_max_m=3.0 * d)
    groups = associate([far_only, _obs("b", b, fire)], AssociationSettings())
    assert len(groups) == 2


def test_alarms_far_apart_in_time_stay_apart() -> None:
    a, b, fire = _two_towers()
    groups = associate(
        [_obs("a", a, fire), _obs("b", b, fire, time_s=3600.0)], AssociationSettings(window_s=900.0)
    )
    assert len(groups) == 2


def test_a_third_tower_that_disagrees_is_kept_out_by_the_chi2_gate() -> None:
    a, b, fire = _two_towers()
    c = destination(*fire, 200.0, 10_000.0)
    elsewhere = destination(*fire, 90.0, 800.0)
    groups = associate(
        [_obs("a", a, fire), _obs("b", b, fire), _obs("c", c, elsewhere, range_min_m=5000.0)],
        AssociationSettings(),
    )
    sizes = sorted(len(g) for g in groups)
    assert sizes == [1, 2]


def test_fuser_reports_changes_and_clears_vanished_fires() -> None:
    a, b, fire = _two_towers()
    fuser = Fuser(FusionSettings())

    def alarm(
        alarm_id: str, tower: tuple[float, float], seq: int = 1, state: str = "confirmed"
    ) -> AlarmMessage:
        return AlarmMessage.model_validate(
            alarm_payload(
                alarm_id=alarm_id,
                seq=seq,
                tower_id=alarm_id[:2],
                tower_lat=tower[0],
                tower_lon=tower[1],
                fire_lat=fire[0],
                fire_lon=fire[1],
                state=state,
                sent_at_s=1_800_000_000.0 + seq,
                first_seen_s=1_800_000_000.0,
            )
        )

    first = fuser.reconcile([alarm("T1-a", a)], {}, 0.0)
    assert [f.geometry for f in first] == ["bearing_only"] and first[0].version == 1
    previous = {f.fire_id: f for f in first}
    second = fuser.reconcile([alarm("T1-a", a), alarm("T2-b", b)], previous, 1.0)
    assert len(second) == 1 and second[0].version == 2
    assert second[0].range_source == "triangulated"
    assert second[0].position is not None
    assert distance_bearing(second[0].position.lat, second[0].position.lon, *fire)[0] < 1.0
    previous = {f.fire_id: f for f in second}
    assert fuser.reconcile([alarm("T1-a", a), alarm("T2-b", b)], previous, 2.0) == []
    gone = fuser.reconcile([], previous, 3.0)
    assert [(f.state, f.version) for f in gone] == [("cleared", 3)]
    assert gone[0].cleared_at is not None


def test_test_alarms_never_fuse_with_real_ones() -> None:
    a, b, fire = _two_towers()
    groups = associate([_obs("a", a, fire), _obs("b", b, fire, test=True)], AssociationSettings())
    assert len(groups) == 2


@pytest.mark.parametrize("sigma_deg", [0.02, 0.2])
def test_ellipse_scales_with_the_stated_bearing_sigma(sigma_deg: float) -> None:
    a, b, fire = _two_towers()
    fix = triangulate(
        [
            _obs("a", a, fire, bearing_sigma_deg=sigma_deg),
            _obs("b", b, fire, bearing_sigma_deg=sigma_deg),
        ]
    )
    assert fix is not None
    # 10 km × σ (rad) across each ray, ×√5.99 for 95 %, at a ~97° crossing.
    expected_m = 10_000.0 * math.radians(sigma_deg) * math.sqrt(5.991)
    assert 0.8 * expected_m < fix.ellipse.semi_major_m < 1.3 * expected_m


def test_a_fire_keeps_its_id_when_its_first_alarm_clears() -> None:
    a, b, fire = _two_towers()
    fuser = Fuser(FusionSettings())

    def alarm(alarm_id: str, tower: tuple[float, float], first_s: float) -> AlarmMessage:
        return AlarmMessage.model_validate(
            alarm_payload(
                alarm_id=alarm_id,
                seq=1,
                tower_id=alarm_id[:2],
                tower_lat=tower[0],
                tower_lon=tower[1],
                fire_lat=fire[0],
                fire_lon=fire[1],
                first_seen_s=first_s,
                sent_at_s=first_s + 10.0,
            )
        )

    early, late = alarm("T1-a", a, 1_800_000_000.0), alarm("T2-b", b, 1_800_000_100.0)
    (both,) = fuser.reconcile([early, late], {}, 0.0)
    (alone,) = fuser.reconcile([late], {both.fire_id: both}, 1.0)
    assert alone.fire_id == both.fire_id and alone.state == "active"
    assert alone.version == both.version + 1 and alone.towers == ("T2",)


def test_scalar_frame_transforms_match_the_geodesy_module() -> None:
    from hub.fusion import LocalFrame

    frame = LocalFrame(41.1, 121.95)
    for lat, lon in ((41.08, 121.9), (41.3, 122.2), (40.9, 121.6)):
        e, n = frame.local_of(lat, lon)
        reference = np.asarray(frame.to_local(lat, lon)).reshape(2)
        assert abs(e - reference[0]) < 1e-6 and abs(n - reference[1]) < 1e-6
        back = frame.geodetic_of(e, n)
        ref_lat, ref_lon = frame.to_geodetic(e, n)
        assert abs(back[0] - float(ref_lat)) < 1e-10 and abs(back[1] - float(ref_lon)) < 1e-10
