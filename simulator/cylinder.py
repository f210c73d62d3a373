"""The gas cylinder: liquid under its own vapour, cooled by what is drawn from it.

A cylinder of N2O or CO2 holds liquid under its saturated vapour, so its
pressure is the saturation pressure of the liquid's temperature, not a
measure of what is left (`domain.md`, cylinder row). The console draws vapour;
the liquid boils to replace it and cools by the latent heat over its own heat
capacity: the ~0.15 g/s of one probe sags a full N2O cylinder by about 1.6 K
(26 psi) over a 3 x 180 s procedure. The room warms it back through
``warm_w_per_k``.

When the last liquid has boiled off, what is left is vapour (about a fifth of
a full charge: the vapour density over the fill ratio) and the pressure falls
in proportion to it as it is drawn. A cylinder that has nothing left reads
0 psig.

Sans-I/O: `update` is given the elapsed time and the grams drawn.
"""

from __future__ import annotations

from simulator.gas import ATMOSPHERE_PSIA, GASES, GasName, saturation_segment

__all__ = ["Cylinder"]

# Heat capacity of the vapour, J/(g K): it only matters once the liquid is gone.
_VAPOUR_CP_J_PER_G_K = 1.0


class Cylinder:
    """Temperature, contents and pressure of the cylinder feeding the regulator."""

    __slots__ = (
        "_cp",
        "_gas",
        "_high",
        "_latent",
        "_low",
        "_slope",
        "_x0",
        "_y0",
        "ambient_c",
        "charge_g",
        "left_g",
        "psig",
        "tail_g",
        "temperature_c",
        "wall_j_per_k",
        "warm_w_per_k",
    )

    def __init__(
        self,
        gas: GasName,
        charge_g: float,
        temperature_c: float,
        ambient_c: float,
        wall_j_per_k: float = 0.0,
        warm_w_per_k: float = 1.5,
    ) -> None:
        props = GASES[gas]
        self._gas: GasName = gas
        self._latent = props.latent_j_per_g
        self._cp = props.liquid_cp_j_per_g_k
        self.charge_g = charge_g
        self.tail_g = charge_g * props.tail_fraction
        self.ambient_c = ambient_c
        self.wall_j_per_k = wall_j_per_k
        self.warm_w_per_k = warm_w_per_k
        self.left_g = charge_g
        self.temperature_c = temperature_c
        self._low = self._high = self._x0 = self._y0 = self._slope = 0.0
        self._segment()
        self.psig = self._pressure()

    def _segment(self) -> None:
        self._low, self._high, self._x0, self._y0, self._slope = saturation_segment(
            self._gas, self.temperature_c
        )

    @property
    def liquid_g(self) -> float:
        """Liquid left: the charge less what was drawn, less the vapour that fills it."""
        liquid = self.left_g - self.tail_g
        return liquid if liquid > 0.0 else 0.0

    @property
    def saturation_psig(self) -> float:
        """The liquid's saturation pressure at the cylinder's temperature."""
        t = self.temperature_c
        if not self._low <= t <= self._high:
            self._segment()
        return self._y0 + self._slope * (t - self._x0)

    def _pressure(self) -> float:
        left = self.left_g
        if left <= 0.0:
            return 0.0
        sat = self.saturation_psig
        if left >= self.tail_g:
            return sat
        # Vapour only: the pressure falls with the mass left (isothermal).
        psig = (sat + ATMOSPHERE_PSIA) * left / self.tail_g - ATMOSPHERE_PSIA
        return psig if psig > 0.0 else 0.0

    def update(self, dt_s: float, drawn_g: float) -> float:
        """``drawn_g`` left the cylinder over the last ``dt_s``; returns the new pressure."""
        left = self.left_g - drawn_g
        if left < 0.0:
            drawn_g += left
            left = 0.0
        self.left_g = left
        liquid = left - self.tail_g
        heat_capacity = self.wall_j_per_k + left * _VAPOUR_CP_J_PER_G_K
        t = self.temperature_c
        if liquid > 0.0:
            heat_capacity += liquid * (self._cp - _VAPOUR_CP_J_PER_G_K)
            # The liquid boils to replace the vapour drawn, at its latent heat.
            t -= drawn_g * self._latent / heat_capacity
        if heat_capacity > 0.0:
            gain = self.warm_w_per_k * dt_s / heat_capacity
            gap = self.ambient_c - t
            if -1e-6 < gap < 1e-6:
                t = self.ambient_c
            else:
                t += gap * (gain if gain < 1.0 else 1.0)
        self.temperature_c = t
        if liquid > 0.0 and self._low <= t <= self._high:
            # The common case, inlined: liquid left, same piece of the curve.
            self.psig = self._y0 + self._slope * (t - self._x0)
        else:
            self.psig = self._pressure()
        return self.psig

    def empty(self) -> None:
        """Nothing left (the `cylinder_empty` fault): it reads 0 psig."""
        self.left_g = 0.0
        self.psig = 0.0

    def refill(self) -> None:
        """A full cylinder at room temperature takes this one's place."""
        self.left_g = self.charge_g
        self.temperature_c = self.ambient_c
        self.psig = self._pressure()
