"""The ice ball around the probe: its growth while the gas flows and its passive thaw.

One state serves both: the frozen volume in two zones, its sensible cold, and
the cold the tissue around it has given up. The freeze grows it, the thaw
melts it, and the thermistor's plateau, the time the tip clears and the time
the whole probe is free all follow from it (`docs/simulator.md`, "Ice ball").

Geometry (a capsule on the cooled length of the shaft):

* the **tip zone** is the cap of ice beyond the closed tip, a hemisphere of
  radius ``R_tip`` centred on it: the thermistor reads the melting plateau as
  long as it has ice;
* the **shaft zone** is the cylinder of radius ``R_shaft`` around the cooled
  length ``L`` plus the proximal cap behind it: the probe is free once it has
  none either. The ball is ``2 R_shaft`` wide and ``L + R_tip + R_shaft`` long.

Heat flows, per zone, quasi-steady:

* the probe draws ``G (0 - T_surface)`` out of it by conduction through the
  ice (``G`` of a spherical shell for the tip, of a cylinder for the shaft),
  but never more, both zones together, than the few watts of refrigeration that
  reach the tissue (`domain.md`: an ideal fixed-temperature probe overpredicts
  the ball); the shaft's surface is warmer than the tip (``shaft_surface_share``);
* the tissue feeds its front ``A k_t T_tissue (1 / delta + g / R)``: the second
  term is the steady flux of a curved front, the first the transient one,
  whose depth ``delta`` follows from the cold the tissue has already given up
  (``shell_j``, a heat-balance-integral estimate with a linear profile). The
  shell recovers slowly (perfusion, far field), so the longer the procedure,
  the colder and deeper it is and the slower the next thaw: this is why a thaw
  after three cycles takes about twice as long as after one while the ball has
  levelled off;
* the difference freezes or melts ice at the latent heat of tissue water. When
  the gas stops, the heat arriving first pays back the sensible cold of the ice
  (the plateau: the inside of the ball warms to 0 C) and then melts it from the
  outside in; the tip zone, with its larger steady flux and smaller volume,
  clears first and the middle of the cooled length last.

The cooled length grows with how cold the tip is (the exhaust warms along the
shaft, so a colder tip keeps more of it below 0 C): with the conduction, this
is what makes a -70 C probe grow about twice the ball of a -50 C one (Wolter
2017). A thicker probe (a lower gauge number) conducts more and grows a bigger
ball.

Constants are fitted, within their physical ranges, to the figures of
`domain.md` (the measured ball after 106 s, the seed's volume ratios, the thaw
row); the fit and its residuals are in `docs/simulator.md`. Updates run at
the physics' slow tick (every quarter of a second), so the cost per 10 ms step stays
small; nothing here reads a clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

__all__ = ["GAUGE_OD_MM", "IceBall", "IceParams", "probe_radius_mm"]

# Outer diameter of hypodermic tubing by Stubs gauge (ISO 9626, regular wall), mm.
GAUGE_OD_MM: Final[dict[int, float]] = {
    10: 3.404,
    11: 3.048,
    12: 2.769,
    13: 2.413,
    14: 2.108,
    15: 1.829,
    16: 1.651,
    17: 1.473,
    18: 1.270,
    19: 1.067,
    20: 0.908,
    21: 0.819,
    22: 0.718,
    23: 0.642,
    24: 0.566,
    25: 0.515,
    26: 0.464,
    27: 0.413,
    28: 0.362,
    29: 0.337,
    30: 0.312,
}

_TWO_PI: Final = 2.0 * math.pi
_TWO_THIRDS_PI: Final = 2.0 * math.pi / 3.0


def probe_radius_mm(gauge: int) -> float:
    """The shaft's outer radius for a Stubs gauge (10-30 G)."""
    try:
        return GAUGE_OD_MM[gauge] / 2.0
    except KeyError:
        raise ValueError(f"probe_gauge = {gauge!r}: expected a whole gauge 10..30") from None


@dataclass(frozen=True, slots=True)
class IceParams:
    """The ice model's constants; `PhysicsParams` carries them with its defaults."""

    probe_radius_mm: float
    cooled_length_mm: float
    cooled_length_exp: float
    reference_tip_c: float
    tissue_c: float
    ice_k_w_per_m_k: float
    tissue_k_w_per_m_k: float
    tissue_rho_c_j_per_ml_k: float
    latent_j_per_ml: float
    ice_cp_j_per_ml_k: float
    sensible_share: float
    shaft_surface_share: float
    tip_flux_geometry: float
    shaft_flux_geometry: float
    shell_min_mm: float
    shell_recovery_tip_per_s: float
    shell_recovery_shaft_per_s: float
    shell_rewarm_tau_s: float


class IceBall:
    """The frozen volume around the probe and the cold around it; SI-free units (mm, J, W, s).

    `update` advances it by one slow tick given how long the gas cooled in it,
    the mean tip temperature while it did and the power available to the
    tissue. Everything else reads the state.
    """

    __slots__ = (
        "_c",
        "_length",
        "_r_shaft",
        "_r_tip",
        "drawn_w",
        "sensible_shaft_j",
        "sensible_tip_j",
        "shell_shaft_j",
        "shell_tip_j",
        "v_shaft",
        "v_tip",
    )

    def __init__(self, params: IceParams) -> None:
        p = params
        r0 = p.probe_radius_mm
        self._c = (
            r0,
            r0**3,
            p.cooled_length_mm,
            p.cooled_length_exp,
            -p.reference_tip_c,
            p.tissue_c,
            p.ice_k_w_per_m_k / 1000.0,  # W/(mm K)
            p.tissue_k_w_per_m_k / 1000.0 * p.tissue_c,  # k_t T_tissue, W/mm
            p.tissue_rho_c_j_per_ml_k / 1000.0 * p.tissue_c / 2.0,  # rho c T/2, J/mm3
            p.latent_j_per_ml / 1000.0,  # J/mm3
            p.ice_cp_j_per_ml_k / 1000.0 * p.sensible_share,  # J/(mm3 K)
            p.shaft_surface_share,
            p.tip_flux_geometry,
            p.shaft_flux_geometry,
            p.shell_min_mm,
            p.shell_recovery_tip_per_s,
            p.shell_recovery_shaft_per_s,
            1.0 / p.shell_rewarm_tau_s,
            r0 * 1.05,
        )
        self.v_tip = 0.0  # mm3 of ice in the tip cap
        self.v_shaft = 0.0  # mm3 of ice around the shaft
        self.sensible_tip_j = 0.0  # cold of the ice below 0 C
        self.sensible_shaft_j = 0.0
        self.shell_tip_j = 0.0  # cold the unfrozen tissue around has given up
        self.shell_shaft_j = 0.0
        self.drawn_w = 0.0  # what the probe drew from the tissue over the last tick
        self._length = 0.0  # the cooled (frozen) length, mm
        self._r_tip = r0
        self._r_shaft = r0

    # ------------------------------------------------------------------ state

    @property
    def active(self) -> bool:
        """Ice left (frozen volume or its cold below 0 C): the thaw still has work to do."""
        return (
            self.v_tip > 0.0
            or self.v_shaft > 0.0
            or self.sensible_tip_j > 0.0
            or self.sensible_shaft_j > 0.0
        )

    @property
    def tip_iced(self) -> bool:
        """Ice touches the closed tip: the thermistor cannot read above 0 C."""
        return self.v_tip > 0.0 or self.sensible_tip_j > 0.0

    @property
    def shaft_iced(self) -> bool:
        return self.v_shaft > 0.0 or self.sensible_shaft_j > 0.0

    @property
    def volume_ml(self) -> float:
        return (self.v_tip + self.v_shaft) / 1000.0

    @property
    def latent_j(self) -> float:
        """Latent heat held by the ball (what the tissue must give to melt it)."""
        return (self.v_tip + self.v_shaft) * self._c[9]

    @property
    def radius_mm(self) -> float:
        """Half the ball's width, from the probe's axis (0 without ice)."""
        return self._r_shaft if self.v_shaft > 0.0 else 0.0

    @property
    def tip_radius_mm(self) -> float:
        """How far the ice reaches beyond the tip (0 without ice there)."""
        return self._r_tip if self.v_tip > 0.0 else 0.0

    @property
    def width_mm(self) -> float:
        return 2.0 * self.radius_mm

    @property
    def length_mm(self) -> float:
        """Along the shaft: the cap beyond the tip, the cooled length, the proximal cap."""
        if self.v_tip <= 0.0 and self.v_shaft <= 0.0:
            return 0.0
        return self.tip_radius_mm + self._length + self.radius_mm

    @property
    def cooled_length_mm(self) -> float:
        return self._length

    # ----------------------------------------------------------------- update

    def update(
        self,
        dt_s: float,
        cool_s: float,
        tip_c: float,
        power_w: float,
        steady_c: float | None = None,
    ) -> None:
        """Advance by ``dt_s``: the gas cooled for ``cool_s`` of it, the tip at ``tip_c``
        on average while it did, with ``power_w`` of refrigeration reaching the tissue.

        ``steady_c`` is the temperature the gas holds the tip at (where the tip is
        heading; the tip itself by default): it sets the cooled length, which the
        exhaust establishes within a second of the flow starting.

        The two zones are written out rather than looped over: this runs four
        times a second of device time and is the costliest part of the slow tick.
        """
        (
            r0,
            r0_cubed,
            length_ref,
            length_exp,
            ref_cold,
            _tissue_c,
            k_ice,
            kt_tt,
            shell_j_per_mm3,
            latent,
            sensible_per_k,
            shaft_share,
            g_tip,
            g_shaft,
            shell_min,
            recover_tip,
            recover_shaft,
            rewarm,
            r_floor,
        ) = self._c
        cooling = cool_s > 0.0
        freezing = cooling and tip_c < 0.0
        cold = -tip_c if freezing else 0.0
        if freezing:
            steady = cold if steady_c is None else -steady_c
            if steady > 0.0:
                target = length_ref * (steady / ref_cold) ** length_exp
                if target > self._length:
                    self._length = target
        length = self._length

        # Geometry from the volumes (the shaft by Newton from the last radius).
        v_tip = self.v_tip
        v_shaft = self.v_shaft
        r_tip = (r0_cubed + 1.5 * v_tip / math.pi) ** (1.0 / 3.0) if v_tip > 0.0 else r0
        r = self._r_shaft
        if v_shaft > 0.0:
            for _ in range(6):
                step = (
                    math.pi * length * (r * r - r0 * r0)
                    + _TWO_THIRDS_PI * (r * r * r - r0_cubed)
                    - v_shaft
                ) / (_TWO_PI * r * (length + r))
                r -= step
                if r < r0:
                    r = r0
                if -1e-5 < step < 1e-5:
                    break
        else:
            r = r0
        self._r_tip = r_tip
        self._r_shaft = r
        area_tip = _TWO_PI * r_tip * r_tip
        area_shaft = _TWO_PI * r * (length + r)

        # What the probe draws out of each zone, capped by the refrigeration.
        drawn_tip = drawn_shaft = 0.0
        if freezing:
            rt = r_tip if r_tip > r_floor else r_floor
            rs = r if r > r_floor else r_floor
            demand_tip = _TWO_PI * k_ice / (1.0 / r0 - 1.0 / rt) * cold
            demand_shaft = (
                _TWO_PI * k_ice * (length / math.log(rs / r0) + 1.0 / (1.0 / r0 - 1.0 / rs))
            ) * (cold * shaft_share)
            share = cool_s / dt_s
            demand = demand_tip + demand_shaft
            if demand > power_w:
                share *= power_w / demand
            drawn_tip = demand_tip * share
            drawn_shaft = demand_shaft * share
        self.drawn_w = drawn_tip + drawn_shaft

        # Each zone: tissue in, probe out; the shell deepens with what it gave.
        # -- the tip cap
        sensible = self.sensible_tip_j
        shell = self.shell_tip_j
        if cooling or v_tip > 0.0 or sensible > 0.0:
            depth = shell / (shell_j_per_mm3 * area_tip)
            if depth < shell_min:
                depth = shell_min
            transient = area_tip * kt_tt / depth
            inflow = transient + area_tip * kt_tt * g_tip / r_tip
            shell += (transient - recover_tip * shell) * dt_s
        else:
            inflow = 0.0
            shell -= (recover_tip if recover_tip > rewarm else rewarm) * shell * dt_s
        self.shell_tip_j = shell if shell > 0.0 else 0.0
        net = (drawn_tip - inflow) * dt_s
        if freezing:
            v_tip += net / latent
            if v_tip < 0.0:
                v_tip = 0.0
            sensible = sensible_per_k * v_tip * cold
        elif sensible >= -net:
            sensible += net
        else:
            v_tip += (net + sensible) / latent
            sensible = 0.0
            if v_tip < 0.0:
                v_tip = 0.0
        self.v_tip = v_tip
        self.sensible_tip_j = sensible
        # -- the shaft
        sensible = self.sensible_shaft_j
        shell = self.shell_shaft_j
        if cooling or v_shaft > 0.0 or sensible > 0.0:
            depth = shell / (shell_j_per_mm3 * area_shaft)
            if depth < shell_min:
                depth = shell_min
            transient = area_shaft * kt_tt / depth
            inflow = transient + area_shaft * kt_tt * g_shaft / r
            shell += (transient - recover_shaft * shell) * dt_s
        else:
            inflow = 0.0
            shell -= (recover_shaft if recover_shaft > rewarm else rewarm) * shell * dt_s
        self.shell_shaft_j = shell if shell > 0.0 else 0.0
        net = (drawn_shaft - inflow) * dt_s
        if freezing:
            v_shaft += net / latent
            if v_shaft < 0.0:
                v_shaft = 0.0
            sensible = sensible_per_k * v_shaft * cold
        elif sensible >= -net:
            sensible += net
        else:
            v_shaft += (net + sensible) / latent
            sensible = 0.0
            if v_shaft < 0.0:
                v_shaft = 0.0
        self.v_shaft = v_shaft
        self.sensible_shaft_j = sensible

        if not cooling and v_tip <= 0.0 and v_shaft <= 0.0:
            self._length = 0.0
            # Forget what is no longer worth updating (a millijoule of cold).
            if self.shell_tip_j < 1e-3:
                self.shell_tip_j = 0.0
            if self.shell_shaft_j < 1e-3:
                self.shell_shaft_j = 0.0
