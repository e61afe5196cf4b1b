"""Simulated Pelco-D head on a pty: a SimulatedHead answering Pelco-D frames over RS-485."""

from __future__ import annotations

from drivers import codec_pelco_d as pd
from simulators.head import HeadCommandRefused, SimulatedHead
from simulators.serial_devices import PtySerialDevice


class PelcoDHeadSimulator(PtySerialDevice):
    """Answers the 0x51/0x53/0x55 queries after ``reply_delay_s`` (RS-485 turnaround)
    and obeys motion, preset and absolute-position commands without replying, as most
    heads do. Frames for other addresses on the bus are ignored. Zoom positions map to
    the head's own hfov range with the codec's geometric law."""

    def __init__(
        self,
        head: SimulatedHead,
        *,
        address: int = 1,
        zoom_position_max: int = pd.ZOOM_POSITION_MAX,
        reply_delay_s: float = 0.005,
        link_path: str | None = None,
    ) -> None:
        super().__init__("pelco_d", link_path)
        if not 1 <= address <= 0xFF:
            raise ValueError(f"pelco-d simulator: address must be 1…255, got {address}")
        self.head = head
        self.address = address
        self.zoom_position_max = zoom_position_max
        self.reply_delay_s = reply_delay_s
        self._decoder = pd.PelcoDDecoder()
        self.frames_received = 0
        self.unknown_commands = 0
        self.refused_commands = 0

    @property
    def crc_errors(self) -> int:
        return self._decoder.crc_errors

    def on_restore(self) -> None:
        self._decoder = pd.PelcoDDecoder()

    def handle_bytes(self, data: bytes) -> None:
        for frame in self._decoder.feed(data):
            if frame.address != self.address:
                continue
            self.frames_received += 1
            self._obey(frame)

    def _zoom_position(self, hfov_deg: float) -> int:
        return pd.hfov_to_zoom_position(
            hfov_deg, self.head.hfov_max_deg, self.head.hfov_min_deg, self.zoom_position_max
        )

    def _obey(self, frame: pd.PelcoFrame) -> None:
        cmd2 = frame.cmd2
        if frame.cmd1 != 0:
            # Camera commands (iris, focus, auto-scan) in cmd1: a thermal head ignores them.
            self.unknown_commands += 1
            return
        if cmd2 in pd.REPLY_FOR_QUERY:
            state = self.head.state()
            if cmd2 == pd.QUERY_PAN:
                value = pd.encode_pan(state.raw_pan_deg)
            elif cmd2 == pd.QUERY_TILT:
                value = pd.encode_tilt(max(-90.0, min(90.0, state.raw_tilt_deg)))
            else:
                value = self._zoom_position(state.hfov_deg)
            answer = pd.reply(self.address, pd.REPLY_FOR_QUERY[cmd2], value).encode()
            self.schedule(self.reply_delay_s, lambda: self.write(answer))
            return
        if cmd2 == pd.SET_PAN:
            self.head.command_absolute(frame.value % pd.CENTIDEG_PER_TURN / 100.0, None)
        elif cmd2 == pd.SET_TILT:
            self.head.command_absolute(None, pd.decode_tilt(frame.value % pd.CENTIDEG_PER_TURN))
        elif cmd2 == pd.SET_ZOOM:
            hfov = pd.zoom_position_to_hfov(
                frame.value, self.head.hfov_max_deg, self.head.hfov_min_deg, self.zoom_position_max
            )
            self.head.command_absolute(None, None, hfov)
        elif cmd2 in (pd.PRESET_SET, pd.PRESET_CLEAR, pd.PRESET_GO):
            self._preset(cmd2, frame.data2)
        elif cmd2 & 0x01 == 0 and cmd2 & 0x80 == 0:
            self._motion(frame)
        else:
            self.unknown_commands += 1

    def _preset(self, operation: int, number: int) -> None:
        token = str(number)
        try:
            if operation == pd.PRESET_SET:
                self.head.set_preset(f"preset {number}", token)
            elif operation == pd.PRESET_CLEAR:
                self.head.remove_preset(token)
            else:
                self.head.goto_preset(token)
        except HeadCommandRefused:
            # A real head has no way to say no over Pelco-D: it just does nothing.
            self.refused_commands += 1

    def _motion(self, frame: pd.PelcoFrame) -> None:
        cmd2 = frame.cmd2
        if cmd2 == 0:
            self.head.stop()
            return
        pan = pd.speed_fraction(frame.data1)
        tilt = pd.speed_fraction(frame.data2)
        pan_frac = pan if cmd2 & pd.RIGHT else -pan if cmd2 & pd.LEFT else 0.0
        tilt_frac = tilt if cmd2 & pd.UP else -tilt if cmd2 & pd.DOWN else 0.0
        zoom_frac = 1.0 if cmd2 & pd.ZOOM_TELE else -1.0 if cmd2 & pd.ZOOM_WIDE else 0.0
        self.head.command_velocity(pan_frac, tilt_frac, zoom_frac)
