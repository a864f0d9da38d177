"""chmod(1) mode strings for FileOp actions (octal or symbolic such as ``u+x,g-w``), as ``tonistiigi/dchapes-mode``."""

from __future__ import annotations

from dataclasses import dataclass

from solver.errors import FileOpError

_S_ISUID, _S_ISGID, _S_ISTXT = 0o4000, 0o2000, 0o1000
_RWXU, _RWXG, _RWXO = 0o700, 0o070, 0o007
_R_ALL, _W_ALL, _X_ALL = 0o444, 0o222, 0o111
_STANDARD_BITS = _S_ISUID | _S_ISGID | _RWXU | _RWXG | _RWXO
_MODET_MASK = 0xFFFF
_CMD2_CLEAR, _CMD2_SET, _CMD2_GBITS, _CMD2_OBITS, _CMD2_UBITS = 1, 2, 4, 8, 16


class ModeSyntaxError(FileOpError):
    """A ``chmod`` mode string that cannot be parsed."""


@dataclass(frozen=True)
class _BitCmd:
    cmd: str
    cmd2: int
    bits: int


@dataclass(frozen=True)
class ModeSet:
    """A parsed chmod(1) mode (octal or symbolic such as ``u+x,g-w``), as dchapes-mode.

    ``apply`` takes and returns the 12 permission bits (``0o7777``).
    """

    cmds: tuple[_BitCmd, ...]

    @classmethod
    def parse(cls, text: str) -> "ModeSet":
        """``mode.ParseWithUmask(text, 0)``."""
        if text == "":
            raise ModeSyntaxError("invalid mode \"\": invalid syntax")
        if text[0].isdigit():
            return cls(tuple(_parse_octal_mode(text)))
        return cls(tuple(_SymbolicParser(text).parse()))

    def apply(self, perm: int, is_dir: bool) -> int:
        """The permission bits after applying this mode to ``perm``."""
        old = perm & 0o7777
        new = old
        for c in self.cmds:
            if c.cmd == "u":
                new = _apply_copy(c, new, (new & _RWXU) >> 6)
            elif c.cmd == "g":
                new = _apply_copy(c, new, (new & _RWXG) >> 3)
            elif c.cmd == "o":
                new = _apply_copy(c, new, new & _RWXO)
            elif c.cmd == "+":
                new |= c.bits
            elif c.cmd == "-":
                new &= ~c.bits
            elif c.cmd == "X" and (old & _X_ALL or is_dir):
                new |= c.bits
        return new & 0o7777


def _apply_copy(c: _BitCmd, new: int, value: int) -> int:
    """The 'u', 'g', 'o' commands: copy one class's bits to the others."""
    if c.cmd2 & _CMD2_CLEAR:
        clr = _RWXO if c.cmd2 & _CMD2_SET else value
        if c.cmd2 & _CMD2_UBITS:
            new &= ~((clr << 6) & c.bits)
        if c.cmd2 & _CMD2_GBITS:
            new &= ~((clr << 3) & c.bits)
        if c.cmd2 & _CMD2_OBITS:
            new &= ~(clr & c.bits)
    if c.cmd2 & _CMD2_SET:
        if c.cmd2 & _CMD2_UBITS:
            new |= (value << 6) & c.bits
        if c.cmd2 & _CMD2_GBITS:
            new |= (value << 3) & c.bits
        if c.cmd2 & _CMD2_OBITS:
            new |= value & c.bits
    return new & _MODET_MASK


def _parse_octal_mode(text: str) -> list[_BitCmd]:
    if any(ch not in "01234567" for ch in text):
        raise ModeSyntaxError(f"invalid mode {text!r}: invalid syntax")
    value = int(text, 8)
    if value > 0x7FFF or value & ~(_STANDARD_BITS | _S_ISTXT):
        raise ModeSyntaxError(f"invalid mode {text!r}: invalid syntax")
    return _add_cmd("=", _STANDARD_BITS | _S_ISTXT, value)


def _add_cmd(op: str, who: int, oparg: int) -> list[_BitCmd]:
    """dchapes-mode ``addcmd`` with an all-ones mask (umask 0)."""
    mask = _MODET_MASK
    if op == "=":
        clear = _BitCmd("-", 0, who if who else _STANDARD_BITS)
        return [clear, _BitCmd("+", 0, (who & oparg) if who else (mask & oparg))]
    if op in "+-X":
        return [_BitCmd(op, 0, (who & oparg) if who else (mask & oparg))]
    cmd2 = 0
    if who:
        if who & 0o400:
            cmd2 |= _CMD2_UBITS
        if who & 0o040:
            cmd2 |= _CMD2_GBITS
        if who & 0o004:
            cmd2 |= _CMD2_OBITS
        bits = _MODET_MASK
    else:
        cmd2 = _CMD2_UBITS | _CMD2_GBITS | _CMD2_OBITS
        bits = mask
    cmd2 |= {"+": _CMD2_SET, "-": _CMD2_CLEAR, "=": _CMD2_SET | _CMD2_CLEAR}[chr(oparg)]
    return [_BitCmd(op, cmd2, bits)]


class _SymbolicParser:
    """The symbolic branch of BSD ``setmode`` as ported by dchapes-mode."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.s = text
        self.cmds: list[_BitCmd] = []

    def fail(self) -> ModeSyntaxError:
        return ModeSyntaxError(f"invalid mode {self.text!r}: invalid syntax")

    def parse(self) -> list[_BitCmd]:
        while True:
            who = self._parse_who()
            while True:
                op = self._parse_op()
                who &= ~_S_ISTXT
                who = self._parse_perms(op, who)
                if self.s == "":
                    return self.cmds
                if self.s[0] == ",":
                    self.s = self.s[1:]
                    break

    def _parse_who(self) -> int:
        who = 0
        while True:
            if self.s == "":
                raise self.fail()
            ch = self.s[0]
            if ch == "a":
                who |= _STANDARD_BITS
            elif ch == "u":
                who |= _S_ISUID | _RWXU
            elif ch == "g":
                who |= _S_ISGID | _RWXG
            elif ch == "o":
                who |= _RWXO
            else:
                return who
            self.s = self.s[1:]

    def _parse_op(self) -> str:
        if self.s == "":
            raise self.fail()
        op, self.s = self.s[0], self.s[1:]
        if op not in "+-=":
            raise self.fail()
        return op

    def _parse_perms(self, op: str, who: int) -> int:
        perm = perm_x = 0
        equal_done = False
        while True:
            ch = self.s[0] if self.s else ""
            if ch == "r":
                perm |= _R_ALL
            elif ch == "s":
                if who == 0 or who & ~_RWXO:
                    perm |= _S_ISUID | _S_ISGID
            elif ch == "t":
                if who == 0 or who & ~_RWXO:
                    who |= _S_ISTXT
                    perm |= _S_ISTXT
            elif ch == "w":
                perm |= _W_ALL
            elif ch == "X":
                if op == "+":
                    perm_x = _X_ALL
            elif ch == "x":
                perm |= _X_ALL
            elif ch in ("u", "g", "o"):
                if perm:
                    self.cmds += _add_cmd(op, who, perm)
                    perm = 0
                if op == "=":
                    equal_done = True
                if perm_x:
                    self.cmds += _add_cmd("X", who, perm_x)
                    perm_x = 0
                self.cmds += _add_cmd(ch, who, ord(op))
            else:
                if perm or (op == "=" and not equal_done):
                    self.cmds += _add_cmd(op, who, perm)
                if perm_x:
                    self.cmds += _add_cmd("X", who, perm_x)
                return who
            self.s = self.s[1:]
