"""Simulated Modbus RTU relay board on a pty: coils answering read-coils and write-single-coil."""

from __future__ import annotations

import functools

from drivers import codec_modbus as mb
from simulators.serial_devices import PtySerialDevice


class RelayBoardSimulator(PtySerialDevice):
    """A board with ``coils`` relays at Modbus ``unit``. Requests for other units are
    ignored (they are for other boards on the bus). ``drop()``/``restore()`` is a power
    cycle when ``reset_on_replug``: every relay opens, as on a real board."""

    def __init__(
        self,
        *,
        unit: int = 1,
        coils: int = 8,
        reply_delay_s: float = 0.002,
        reset_on_replug: bool = True,
        link_path: str | None = None,
    ) -> None:
        super().__init__("relay", link_path)
        if not 1 <= unit <= 247 or not 1 <= coils <= mb.MAX_READ_COILS:
            raise ValueError(
                f"relay board: unit must be 1…247 and coils 1…2000, got {unit}, {coils}"
            )
        self.unit = unit
        self.reply_delay_s = reply_delay_s
        self.reset_on_replug = reset_on_replug
        self._coils = [False] * coils
        self._decoder = mb.ModbusRtuDecoder(mb.Side.REQUEST)
        self._forced_exception: tuple[int, int] | None = None  # code, remaining
        self.requests = 0
        self.writes = 0

    def coil(self, index: int) -> bool:
        return self._coils[index]

    def power_cycle(self) -> None:
        """Every relay opens, without the port going away (a board on its own supply)."""
        self._coils = [False] * len(self._coils)

    def fail_next(self, code: int = mb.SERVER_DEVICE_FAILURE, n: int = 1) -> None:
        """Answer the next ``n`` requests with this exception code."""
        self._forced_exception = (code, n)

    @property
    def crc_errors(self) -> int:
        return self._decoder.crc_errors

    def on_restore(self) -> None:
        self._decoder = mb.ModbusRtuDecoder(mb.Side.REQUEST)
        if self.reset_on_replug:
            self.power_cycle()

    def handle_bytes(self, data: bytes) -> None:
        for frame in self._decoder.feed(data):
            if getattr(frame, "unit", None) != self.unit:
                continue
            self.requests += 1
            self.schedule(self.reply_delay_s, functools.partial(self.write, self._answer(frame)))

    def _answer(self, frame: mb.ModbusFrame) -> bytes:
        function = mb.WRITE_SINGLE_COIL if isinstance(frame, mb.WriteSingleCoil) else mb.READ_COILS
        if self._forced_exception is not None:
            code, remaining = self._forced_exception
            self._forced_exception = (code, remaining - 1) if remaining > 1 else None
            return mb.exception_response(self.unit, function, code)
        if isinstance(frame, mb.WriteSingleCoil):
            if frame.coil >= len(self._coils):
                return mb.exception_response(self.unit, function, mb.ILLEGAL_DATA_ADDRESS)
            if frame.value not in (mb.COIL_ON, mb.COIL_OFF):
                return mb.exception_response(self.unit, function, mb.ILLEGAL_DATA_VALUE)
            self._coils[frame.coil] = frame.on
            self.writes += 1
            return mb.write_single_coil_echo(frame)
        if isinstance(frame, mb.ReadCoilsRequest):
            if frame.count < 1 or frame.start + frame.count > len(self._coils):
                return mb.exception_response(self.unit, function, mb.ILLEGAL_DATA_ADDRESS)
            return mb.read_coils_response(
                self.unit, self._coils[frame.start : frame.start + frame.count]
            )
        return mb.exception_response(self.unit, function, mb.ILLEGAL_FUNCTION)
