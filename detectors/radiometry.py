"""LWIR radiometry: 8–14 µm band radiance tables, horizontal-path atmosphere, optics and link budget."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

BAND_MIN_UM = 8.0
BAND_MAX_UM = 14.0
# 0.01 µm steps: the trapezoid rule is then exact to < 1e-5 relative for any T in the table.
_WAVELENGTHS_UM = np.linspace(BAND_MIN_UM, BAND_MAX_UM, 601)

_H = 6.62607015e-34  # J s
_C = 299792458.0  # m/s
_KB = 1.380649e-23  # J/K
_C1 = 2.0 * _H * _C**2  # W m² sr⁻¹ (per m of wavelength, × λ⁻⁵)
_C2 = _H * _C / _KB  # m K

# Table span: a cold clear sky (~200 K) up to the sun's photosphere (5778 K), whose
# specular glint the simulator renders.
TABLE_MIN_K = 150.0
TABLE_MAX_K = 6000.0
TABLE_STEP_K = 1.0

# Reference aerosol extinction in the LWIR window at ~23 km visibility (docs/physics/link-budget.md).
_AEROSOL_PER_KM_AT_23_KM = 0.03
_REFERENCE_VISIBILITY_KM = 23.0


def spectral_radiance(wavelength_um: FloatArray, t_k: float | FloatArray) -> FloatArray:
    """Planck spectral radiance in W m⁻² sr⁻¹ µm⁻¹ (broadcasts wavelength against T)."""
    lam = np.asarray(wavelength_um, dtype=np.float64) * 1e-6
    t = np.asarray(t_k, dtype=np.float64)
    with np.errstate(over="ignore"):
        return _C1 / lam**5 / np.expm1(_C2 / (lam * t)) * 1e-6


def _trapezoid(y: FloatArray, x: FloatArray, axis: int = -1) -> FloatArray:
    return np.asarray(np.trapezoid(y, x, axis=axis), dtype=np.float64)


def band_radiance_exact(t_k: float) -> float:
    """L(T): Planck radiance integrated over 8–14 µm in W m⁻² sr⁻¹ (direct quadrature)."""
    if t_k <= 0:
        raise ValueError(f"temperature must be > 0 K, got {t_k}")
    return float(_trapezoid(spectral_radiance(_WAVELENGTHS_UM, t_k), _WAVELENGTHS_UM))


@functools.cache
def _tables() -> tuple[FloatArray, FloatArray, FloatArray, float, float]:
    temps = np.arange(TABLE_MIN_K, TABLE_MAX_K + TABLE_STEP_K, TABLE_STEP_K)
    spec = spectral_radiance(_WAVELENGTHS_UM[None, :], temps[:, None])
    rad = _trapezoid(spec, _WAVELENGTHS_UM, axis=1)
    # Inverse on a uniform grid of log L so a lookup is O(1); log L is smooth in T, so
    # 32768 nodes keep the interpolation error far below 0.001 K.
    log_min = math.log(rad[0])
    log_max = math.log(rad[-1])
    log_grid = np.linspace(log_min, log_max, 32768)
    inverse_t = np.interp(log_grid, np.log(rad), temps)
    return temps, rad, inverse_t, log_min, (log_max - log_min) / (log_grid.size - 1)


def band_radiance_table() -> tuple[FloatArray, FloatArray]:
    """The 1 K table (temperatures_k, radiance) behind :func:`band_radiance`."""
    temps, rad, _, _, _ = _tables()
    return temps, rad


@numba.njit(cache=True, fastmath=False)
def _radiance_lookup(
    t_k: npt.NDArray[np.float32], t0: float, rad: FloatArray, out: FloatArray
) -> None:
    n = rad.size
    flat_t = t_k.ravel()
    flat_out = out.ravel()
    for i in range(flat_t.size):
        x = flat_t[i] - t0
        if x <= 0.0:
            flat_out[i] = rad[0]
            continue
        j = int(x)
        if j >= n - 1:
            flat_out[i] = rad[n - 1]
            continue
        f = x - j
        flat_out[i] = rad[j] + f * (rad[j + 1] - rad[j])


@numba.njit(cache=True, fastmath=False)
def _kelvin_lookup(
    radiance: FloatArray,
    log_min: float,
    log_step: float,
    inv: FloatArray,
    out: npt.NDArray[np.float32],
) -> None:
    n = inv.size
    flat_r = radiance.ravel()
    flat_out = out.ravel()
    for i in range(flat_r.size):
        r = flat_r[i]
        if r <= 0.0:
            flat_out[i] = inv[0]
            continue
        x = (math.log(r) - log_min) / log_step
        if x <= 0.0:
            flat_out[i] = inv[0]
            continue
        j = int(x)
        if j >= n - 1:
            flat_out[i] = inv[n - 1]
            continue
        f = x - j
        flat_out[i] = inv[j] + f * (inv[j + 1] - inv[j])


def band_radiance(t_k: npt.ArrayLike) -> FloatArray:
    """L(T) in W m⁻² sr⁻¹ from the 1 K table (float64 array, same shape as ``t_k``)."""
    temps, rad, _, _, _ = _tables()
    t = np.ascontiguousarray(t_k, dtype=np.float32)
    out = np.empty(t.shape, dtype=np.float64)
    _radiance_lookup(t, float(temps[0]), rad, out)
    return out


def band_radiance_clipped(t_k: npt.ArrayLike) -> FloatArray:
    """band_radiance for measured frames: values outside the table (dead pixels read 0 K,
    NaN-filled or over-range ones) are clamped to it rather than read out of bounds."""
    return band_radiance(np.clip(t_k, 0.0, TABLE_MAX_K))


def brightness_temperature(radiance: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """T_b(L): the blackbody temperature in K (float32) whose band radiance is ``radiance``."""
    _, _, inv, log_min, log_step = _tables()
    r = np.ascontiguousarray(radiance, dtype=np.float64)
    out = np.empty(r.shape, dtype=np.float32)
    _kelvin_lookup(r, log_min, log_step, inv, out)
    return out


def band_radiance_derivative(t_k: float) -> float:
    """dL/dT at ``t_k`` in W m⁻² sr⁻¹ K⁻¹ (central difference on the exact integral)."""
    return (band_radiance_exact(t_k + 0.05) - band_radiance_exact(t_k - 0.05)) / 0.1


# ----------------------------------------------------------------------------- atmosphere


def saturation_vapour_pressure_hpa(air_temp_c: float) -> float:
    """Saturation vapour pressure over water (Magnus form, Alduchov & Eskridge 1996)."""
    return 6.1094 * math.exp(17.625 * air_temp_c / (air_temp_c + 243.04))


def water_vapour_density_g_m3(air_temp_c: float, relative_humidity_pct: float) -> float:
    """Absolute humidity ρ_w in g m⁻³ from temperature and relative humidity."""
    e_pa = 100.0 * saturation_vapour_pressure_hpa(air_temp_c) * relative_humidity_pct / 100.0
    return 1000.0 * e_pa / (461.5 * (air_temp_c + 273.15))


@dataclass(frozen=True)
class Atmosphere:
    """A horizontal near-ground path: air temperature, humidity, visibility and pressure."""

    air_temp_c: float
    relative_humidity_pct: float
    visibility_km: float = _REFERENCE_VISIBILITY_KM
    pressure_hpa: float = 1013.25

    def __post_init__(self) -> None:
        if not 0.0 <= self.relative_humidity_pct <= 100.0:
            raise ValueError(
                f"relative_humidity_pct must be in [0, 100], got {self.relative_humidity_pct}"
            )
        if self.visibility_km <= 0:
            raise ValueError(f"visibility_km must be > 0, got {self.visibility_km}")
        if not -60.0 < self.air_temp_c < 60.0:
            raise ValueError(f"air_temp_c must be in (-60, 60) °C, got {self.air_temp_c}")
        if self.pressure_hpa <= 0:
            raise ValueError(f"pressure_hpa must be > 0, got {self.pressure_hpa}")

    @property
    def air_temp_k(self) -> float:
        return self.air_temp_c + 273.15

    @property
    def water_vapour_g_m3(self) -> float:
        return water_vapour_density_g_m3(self.air_temp_c, self.relative_humidity_pct)

    @property
    def aerosol_extinction_per_km(self) -> float:
        """Aerosol extinction in the window, scaled from 0.03 km⁻¹ at 23 km with 1/visibility.

        Koschmieder: visible extinction is 3.912/V; the LWIR share of it is taken as the
        reference's 0.03 km⁻¹ at 23 km, so haze at 5 km visibility gives 0.14 km⁻¹.
        """
        return _AEROSOL_PER_KM_AT_23_KM * _REFERENCE_VISIBILITY_KM / self.visibility_km

    def spectral_extinction_per_km(self) -> FloatArray:
        """β(λ) in km⁻¹ on the band grid: water-vapour continuum + aerosol.

        Roberts, Selby & Biberman 1976: k(ν) = C_s(ν, T)·ρ_w·(e + 0.002·P), with
        C_s(296 K) = 4.18 + 5578·exp(−7.87e−3·ν) g⁻¹ cm² atm⁻¹ and the temperature factor
        exp[1800(1/T − 1/296)].
        """
        nu_per_cm = 1e4 / _WAVELENGTHS_UM
        t_k = self.air_temp_k
        cs = (4.18 + 5578.0 * np.exp(-7.87e-3 * nu_per_cm)) * math.exp(
            1800.0 * (1.0 / t_k - 1.0 / 296.0)
        )
        e_hpa = saturation_vapour_pressure_hpa(self.air_temp_c) * self.relative_humidity_pct / 100.0
        e_atm = e_hpa / 1013.25
        p_atm = self.pressure_hpa / 1013.25
        rho_g_cm3 = self.water_vapour_g_m3 * 1e-6
        k_per_cm = cs * rho_g_cm3 * (e_atm + 0.002 * p_atm)
        return np.asarray(k_per_cm * 1e5 + self.aerosol_extinction_per_km, dtype=np.float64)

    def spectral_transmittance(self, range_m: float | FloatArray) -> FloatArray:
        """τ(λ, R) on the band grid; shape (..., n_wavelengths)."""
        r_km = np.asarray(range_m, dtype=np.float64)[..., None] / 1000.0
        return np.asarray(np.exp(-self.spectral_extinction_per_km() * r_km), dtype=np.float64)

    def transmittance(
        self,
        range_m: float | FloatArray,
        source_k: float = 1000.0,
        background_k: float | None = None,
    ) -> FloatArray:
        """Band transmittance over ``range_m``, weighted by the spectrum that is seen.

        With ``background_k`` the weight is the source-minus-background contrast spectrum
        (what a hotspot's ΔL sees); otherwise the source's own spectrum (what a surface's
        radiance sees).
        """
        weight = spectral_radiance(_WAVELENGTHS_UM, source_k)
        if background_k is not None:
            weight = weight - spectral_radiance(_WAVELENGTHS_UM, background_k)
        tau = self.spectral_transmittance(range_m)
        return _trapezoid(tau * weight, _WAVELENGTHS_UM) / _trapezoid(weight, _WAVELENGTHS_UM)

    def effective_extinction_per_km(
        self, range_m: float = 10_000.0, source_k: float = 1000.0
    ) -> float:
        """β_eff = −ln τ / R for a fire-like source over ``range_m``."""
        tau = float(self.transmittance(range_m, source_k))
        return -math.log(tau) / (range_m / 1000.0)

    def path_radiance(self, range_m: float | FloatArray) -> FloatArray:
        """Radiance the air itself adds over ``range_m``: ∫(1 − τ_λ)·B_λ(T_air) dλ."""
        tau = self.spectral_transmittance(range_m)
        b_air = spectral_radiance(_WAVELENGTHS_UM, self.air_temp_k)
        return _trapezoid((1.0 - tau) * b_air, _WAVELENGTHS_UM)

    def range_tables(
        self, max_range_m: float, step_m: float = 25.0, surface_k: float = 300.0
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(range_m, τ for a surface near ``surface_k``, path radiance) for fast per-pixel lookup."""
        ranges = np.arange(0.0, max_range_m + step_m, step_m)
        return ranges, self.transmittance(ranges, surface_k), self.path_radiance(ranges)


# ----------------------------------------------------------------------------- optics


def _bessel_j1(x: FloatArray) -> FloatArray:
    """J₁(x) from its integral form (1/π)∫₀^π cos(t − x sin t) dt (Gauss–Legendre, 64 nodes)."""
    nodes, weights = np.polynomial.legendre.leggauss(64)
    t = (nodes + 1.0) * (math.pi / 2.0)
    w = weights * (math.pi / 2.0)
    xs = np.asarray(x, dtype=np.float64)
    vals = np.cos(t[None, :] - xs.reshape(-1, 1) * np.sin(t[None, :])) @ w / math.pi
    return np.asarray(vals.reshape(xs.shape), dtype=np.float64)


@functools.cache
def _psf_samples(
    pixel_pitch_um: float, f_number: float, oversample: int, extent_px: int
) -> FloatArray:
    """Polychromatic diffraction PSF (8–13 µm, fire-weighted) sampled per sub-pixel cell area.

    Airy pattern normalised to unit volume: I(r) = π/(4(λN)²)·[2J₁(x)/x]², x = πr/(λN).
    The weights are the 1000 K fire's contrast over a 300 K background, the spectrum that
    makes the hotspot.
    """
    lams = np.linspace(8.0, 13.0, 11)
    weight = spectral_radiance(lams, 1000.0) - spectral_radiance(lams, 300.0)
    weight = weight / weight.sum()
    r_max = (extent_px + 1) * pixel_pitch_um * math.sqrt(2.0)
    r = np.linspace(0.0, r_max, 4000)
    profile = np.zeros_like(r)
    for lam, w in zip(lams, weight, strict=True):
        ln = lam * f_number
        x = math.pi * r / ln
        x_safe = np.where(x == 0.0, 1.0, x)
        airy = np.where(x == 0.0, 1.0, (2.0 * _bessel_j1(x_safe) / x_safe) ** 2)
        profile += w * math.pi / (4.0 * ln * ln) * airy
    cell = pixel_pitch_um / oversample
    n = (2 * extent_px + 1) * oversample
    coords = (np.arange(n) - (n - 1) / 2.0) * cell
    rr = np.hypot(coords[None, :], coords[:, None])
    return np.asarray(np.interp(rr, r, profile) * cell * cell, dtype=np.float64)


@dataclass(frozen=True)
class PeakFraction:
    """Fraction η of a point source's flux in its brightest pixel (diffraction only)."""

    centred: float
    mean: float
    corner: float


@functools.cache
def peak_pixel_fraction(pixel_pitch_um: float, f_number: float) -> PeakFraction:
    """η for a source centred on a pixel, averaged over positions, and on a pixel corner.

    Multiply by the lens efficiency (≈ 0.8 for real lenses and crosstalk) for the link
    budget.
    """
    over = 16
    samples = _psf_samples(pixel_pitch_um, f_number, over, 2)
    n = samples.shape[0]
    sat = np.zeros((n + 1, n + 1))
    sat[1:, 1:] = samples.cumsum(0).cumsum(1)
    centre = n // 2  # index of the cell at the PSF centre (n is odd × over: centre between cells)
    fractions = np.empty((over + 1, over + 1))
    # Offsets of the source within its pixel, 0 … pitch in 1/over steps; the pixel's box
    # is the over×over cell block whose corner is shifted by the offset.
    for iy in range(over + 1):
        for ix in range(over + 1):
            y0 = centre - iy
            x0 = centre - ix
            fractions[iy, ix] = (
                sat[y0 + over, x0 + over] - sat[y0, x0 + over] - sat[y0 + over, x0] + sat[y0, x0]
            )
    corner = float(fractions[0, 0])
    centred = float(fractions[over // 2, over // 2])
    # Average over offsets: the trapezoid rule over the (over+1)² grid of positions.
    wy = np.ones(over + 1)
    wy[0] = wy[-1] = 0.5
    mean = float((fractions * wy[:, None] * wy[None, :]).sum() / (over * over))
    return PeakFraction(centred=centred, mean=mean, corner=corner)


def psf_pixel_kernel(
    pixel_pitch_um: float,
    f_number: float,
    dx_px: float = 0.0,
    dy_px: float = 0.0,
    radius_px: int = 2,
) -> FloatArray:
    """Flux fractions a point source deposits in each pixel of a (2r+1)² block.

    The source sits ``(dx_px, dy_px)`` from the centre of the block's middle pixel
    (|d| ≤ 0.5). The block does not hold the whole Airy tail, so it sums to < 1.
    """
    over = 8
    samples = _psf_samples(pixel_pitch_um, f_number, over, radius_px + 1)
    n = samples.shape[0]
    shift_x = int(round(dx_px * over))
    shift_y = int(round(dy_px * over))
    size = 2 * radius_px + 1
    start = (n - size * over) // 2
    y0 = start - shift_y
    x0 = start - shift_x
    block = samples[y0 : y0 + size * over, x0 : x0 + size * over]
    return np.asarray(block.reshape(size, over, size, over).sum(axis=(1, 3)), dtype=np.float64)


# ----------------------------------------------------------------------------- link budget


@dataclass(frozen=True)
class Optics:
    """A thermal camera's optics and sensor, as the link budget needs them."""

    pixel_pitch_um: float
    focal_length_mm: float
    f_number: float = 1.0
    lens_efficiency: float = 0.8
    netd_mk: float = 50.0

    @property
    def ifov_mrad(self) -> float:
        return self.pixel_pitch_um / self.focal_length_mm

    def footprint_m(self, range_m: float) -> float:
        return self.ifov_mrad * 1e-3 * range_m


def case_c_effective_area_m2(size_m: float, emissivity: float = 0.5) -> float:
    """A_eff = W·H·ε of the design fire: flame sheet W wide, W/2 high, emissivity 0.5."""
    return size_m * (size_m / 2.0) * emissivity


@dataclass(frozen=True)
class LinkBudget:
    """The apparent contrast of a sub-pixel fire at one range."""

    range_m: float
    footprint_m: float
    pixel_fraction: float
    transmittance: float
    delta_t_worst_k: float
    delta_t_mean_k: float
    delta_t_centred_k: float


def _apparent_rise(l_bg_obs: float, delta_l: float) -> float:
    tb = brightness_temperature(np.array([l_bg_obs, l_bg_obs + delta_l]))
    return float(tb[1] - tb[0])


def link_budget(
    optics: Optics,
    atmosphere: Atmosphere,
    fire_area_m2: float,
    range_m: float,
    *,
    fire_k: float = 1000.0,
    background_k: float = 300.0,
) -> LinkBudget:
    """ΔT_app of a fire of effective area A_eff = W·H·ε at ``range_m`` (docs/physics/link-budget.md).

    ΔL = τ·η·p_f·[L(T_f) − L(T_bg)]; ΔT_app = T_b(L_bg,obs + ΔL) − T_b(L_bg,obs), with
    L_bg,obs = τ_bg·L(T_bg) + path radiance. The sub-pixel model holds while p_f ≲ 1;
    beyond that the peak pixel's fill η·p_f is capped at 1 (the pixel full of flame).
    The reference's worked table is diffraction-only: it matches ``lens_efficiency=1``.
    """
    if range_m <= 0:
        raise ValueError(f"range_m must be > 0, got {range_m}")
    if fire_area_m2 <= 0:
        raise ValueError(f"fire_area_m2 must be > 0, got {fire_area_m2}")
    footprint = optics.footprint_m(range_m)
    p_f = fire_area_m2 / footprint**2
    tau_fire = float(atmosphere.transmittance(range_m, fire_k, background_k))
    tau_bg = float(atmosphere.transmittance(range_m, background_k))
    l_bg = band_radiance_exact(background_k)
    l_bg_obs = tau_bg * l_bg + float(atmosphere.path_radiance(range_m))
    contrast = band_radiance_exact(fire_k) - l_bg
    eta = peak_pixel_fraction(optics.pixel_pitch_um, optics.f_number)
    rises = [
        _apparent_rise(l_bg_obs, tau_fire * min(1.0, optics.lens_efficiency * e * p_f) * contrast)
        for e in (eta.corner, eta.mean, eta.centred)
    ]
    return LinkBudget(
        range_m=range_m,
        footprint_m=footprint,
        pixel_fraction=p_f,
        transmittance=tau_fire,
        delta_t_worst_k=rises[0],
        delta_t_mean_k=rises[1],
        delta_t_centred_k=rises[2],
    )


def max_detectable_range_m(
    optics: Optics,
    atmosphere: Atmosphere,
    fire_area_m2: float,
    criterion_k: float,
    *,
    fire_k: float = 1000.0,
    background_k: float = 300.0,
    min_range_m: float = 100.0,
    max_range_m: float = 60_000.0,
) -> float:
    """Largest range at which the worst-position ΔT_app still meets ``criterion_k``.

    ΔT_app falls monotonically with range (p_f ∝ R⁻², τ falls), so bisection on log R
    converges; returns ``max_range_m`` if the fire is seen that far, 0 if not even at
    ``min_range_m``.
    """

    def rise(r: float) -> float:
        return link_budget(
            optics, atmosphere, fire_area_m2, r, fire_k=fire_k, background_k=background_k
        ).delta_t_worst_k

    if rise(min_range_m) < criterion_k:
        return 0.0
    if rise(max_range_m) >= criterion_k:
        return max_range_m
    lo, hi = math.log(min_range_m), math.log(max_range_m)
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if rise(math.exp(mid)) >= criterion_k:
            lo = mid
        else:
            hi = mid
    return math.exp(lo)
