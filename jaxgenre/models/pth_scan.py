"""A `.pth`'s pickle checked opcode by opcode before it is unpickled (`models.pth`,
`models.pth_legacy`): what it would build is bounded, and nothing is built to find out.

Why: pickle's memo lets a few bytes make many objects or reach one object many times.
A 16 KB file whose data.pkl is 16 Mi `EMPTY_LIST` opcodes makes 1.4 GB of lists; one
`LONG_BINPUT` of index 2**31 makes the unpickler size its memo to 2**32 slots; a list
nested 300,000 deep breaks `repr`, and a tuple nested 1,000,000 deep used as a dict key
overflows the C stack when it is hashed (a crash, not an exception). torch.save writes
~35 opcodes a tensor, nested 6 deep (`MAX_DEPTH` leaves ample room).

`scan` runs the pickle machine on stand-ins, with `pickletools.genops` decoding the
opcodes (streaming; arguments checked against the bytes left, so no declared length is
believed). A stand-in is the height of a value that can no longer change (an int: a
scalar, or a tuple of such) or a `_Node` for one that can (a list, dict or set; what a
call returns): a node knows the containers holding it, so that when it grows, they grow
too. Every opcode is charged what the unpickler would allocate for it, roughly and from
above (`_OP`, `_OBJECT`, `_ENTRY`, memo slots up to the largest index, argument bytes),
against the file's limit; a height above `MAX_DEPTH` (a cycle included) is refused.
"""

from __future__ import annotations

import pickletools
from typing import Dict, List, Union

from jaxgenre.models.pth_archive import Refusal, short

MAX_DEPTH = 64   # containers inside containers; torch.save's state dicts: 6
_OP = 8          # every opcode: a stack or mark slot, and the time to read it
_SCALAR = 32     # a number, string or global (plus its argument's bytes)
_OBJECT = 64     # a container, or what a call returns (an empty list is 56 bytes)
_ENTRY = 16      # an item put into a container (a list slot is 8 bytes, a dict entry ~40)
_MEMO_SLOT = 16  # the unpickler's memo is an array of twice the largest index

_LEAVES = {  # push one value that holds nothing
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "STRING", "BINSTRING",
    "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8", "NONE",
    "NEWTRUE", "NEWFALSE", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8",
    "FLOAT", "BINFLOAT", "EMPTY_TUPLE", "GLOBAL", "EXT1", "EXT2", "EXT4", "NEXT_BUFFER",
    "PERSID"}
_EMPTIES = {"EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET"}
_FROM_MARK = {"LIST": False, "DICT": False, "TUPLE": True, "FROZENSET": True,
              "INST": False, "OBJ": False}  # name: the result can never change
_FROM_TOP = {"TUPLE1": (1, True), "TUPLE2": (2, True), "TUPLE3": (3, True),
             "REDUCE": (2, False), "NEWOBJ": (2, False), "NEWOBJ_EX": (3, False),
             "BINPERSID": (1, False), "STACK_GLOBAL": (2, False)}
_INTO_TOP = {"APPEND": 1, "SETITEM": 2, "BUILD": 1}  # items put into the one below
_INTO_MARK = {"APPENDS", "SETITEMS", "ADDITEMS"}     # items above the mark, into the one below
_GETS = {"GET", "BINGET", "LONG_BINGET"}
_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}
_NOTHING = {"PROTO", "FRAME"}
_OTHERS = {"MARK", "POP", "POP_MARK", "DUP", "MEMOIZE", "READONLY_BUFFER", "STOP"}  # each its own


class _Node:
    """A value that may still grow: its height, and the containers holding it."""
    __slots__ = ("height", "parents")

    def __init__(self, height: int):
        self.height, self.parents = height, None


Value = Union[int, _Node]


def _height(value: Value) -> int:
    return value if type(value) is int else value.height


class _Machine:
    """pickle's stack, marks and memo, on stand-ins; `_pickle.c`'s underflow rules."""

    def __init__(self, limit: int, where: str):
        self.limit, self.where = limit, where
        self.stack: List[Value] = []
        self.marks: List[int] = []
        self.memo: Dict[int, Value] = {}
        self.used = self.memo_slots = 0
        self.pos = 0

    def fail(self, why: str) -> Refusal:
        return Refusal(f"{self.where} {why} (opcode at byte {self.pos})")

    def charge(self, nbytes: int) -> None:
        self.used += nbytes
        if self.used > self.limit:
            raise Refusal(
                f"{self.where} would make over {self.limit} bytes of pickle "
                f"objects (opcode at byte {self.pos}), over the limit for this file")

    def pop(self, n: int) -> List[Value]:
        """The top `n` values, never below the last mark."""
        start = len(self.stack) - n
        if start < (self.marks[-1] if self.marks else 0):
            raise self.fail("takes more values than the pickle stack holds")
        items = self.stack[start:]
        del self.stack[start:]
        return items

    def top(self) -> Value:
        """The value on top, which stays there (the container items go into)."""
        if len(self.stack) <= (self.marks[-1] if self.marks else 0):
            raise self.fail("puts items into a value the pickle stack lacks")
        return self.stack[-1]

    def pop_mark(self) -> List[Value]:
        if not self.marks:
            raise self.fail("has no MARK where one is needed")
        start = self.marks.pop()
        items = self.stack[start:]
        del self.stack[start:]
        return items

    def make(self, items: List[Value], fixed: bool) -> Value:
        """A new value holding `items`: a height if it can never change."""
        self.charge(_OBJECT + _ENTRY * len(items))
        height = 1 + max(map(_height, items), default=0)
        if height > MAX_DEPTH:
            raise self.fail(f"nests containers more than {MAX_DEPTH} deep")
        if fixed and all(type(v) is int for v in items):
            return height
        node = _Node(height)
        self.link(node, items)
        return node

    def link(self, node: _Node, items: List[Value]) -> None:
        for item in items:
            if type(item) is _Node:
                if item.parents is None:
                    item.parents = []
                item.parents.append(node)

    def put_into(self, container: Value, items: List[Value]) -> None:
        """`items` put into `container`: it, and what holds it, may grow (each height
        rises at most MAX_DEPTH times, so this is linear in the links)."""
        self.charge(_ENTRY * len(items))
        if type(container) is not _Node:
            return  # a scalar or a tuple: the unpickler refuses to put into it
        self.link(container, items)
        work = [(container, 1 + max(map(_height, items), default=0))]
        while work:
            node, height = work.pop()
            if height <= node.height:
                continue
            if height > MAX_DEPTH:
                raise self.fail(f"nests containers more than {MAX_DEPTH} deep (or in a "
                                f"cycle)")
            node.height = height
            work.extend((parent, height + 1) for parent in node.parents or ())

    def memo_put(self, index: int) -> None:
        self.top()  # there must be a value to memoize
        if index >= self.memo_slots:  # the unpickler grows its memo array to the index
            self.charge(_MEMO_SLOT * (index + 1 - self.memo_slots))
            self.memo_slots = index + 1
        self.charge(_OBJECT)
        self.memo[index] = self.stack[-1]

    def step(self, name: str, arg) -> bool:
        """One opcode; False after STOP."""
        self.charge(_OP + (len(arg) if isinstance(arg, (str, bytes, bytearray)) else 0)
                    + (arg.bit_length() // 8 if type(arg) is int else 0))
        if name in _LEAVES:
            self.charge(_SCALAR)
            self.stack.append(1)
        elif name in _EMPTIES:
            self.stack.append(self.make([], fixed=False))
        elif name in _FROM_MARK:
            self.stack.append(self.make(self.pop_mark(), _FROM_MARK[name]))
        elif name in _FROM_TOP:
            count, fixed = _FROM_TOP[name]
            self.stack.append(self.make(self.pop(count), fixed))
        elif name in _INTO_TOP:
            items = self.pop(_INTO_TOP[name])
            self.put_into(self.top(), items)
        elif name in _INTO_MARK:
            items = self.pop_mark()
            self.put_into(self.top(), items)
        elif name in _GETS:
            if arg not in self.memo:
                raise self.fail(f"reads memo {arg}, which it never wrote")
            self.stack.append(self.memo[arg])
        elif name in _PUTS:
            self.memo_put(arg)
        elif name == "MEMOIZE":
            self.memo_put(len(self.memo))
        elif name == "MARK":
            self.marks.append(len(self.stack))
        elif name == "POP":
            if self.marks and self.marks[-1] == len(self.stack):
                self.marks.pop()  # pickle's POP drops an empty mark
            else:
                self.pop(1)
        elif name == "POP_MARK":
            self.pop_mark()
        elif name == "DUP":
            self.stack.extend(self.pop(1) * 2)
        elif name == "READONLY_BUFFER":
            self.stack.extend(self.pop(1))
        elif name == "STOP":
            self.pop(1)
            return False
        elif name not in _NOTHING:
            raise self.fail(f"uses opcode {name}, which this reader does not know")
        return True


def scan(data: Union[bytes, bytearray], limit: int, where: str) -> int:
    """Refuses (`Refusal`) the pickle `data` (named by `where` in messages, say
    "member 'archive/data.pkl'") if unpickling it would make more than `limit` bytes of
    objects, nest containers more than `MAX_DEPTH` deep, or fail as a damaged pickle;
    builds none of its objects. Returns the bytes it charged (at most `limit`)."""
    machine = _Machine(limit, where)
    try:
        for opcode, arg, pos in pickletools.genops(data):
            machine.pos = pos
            if not machine.step(opcode.name, arg):
                return machine.used
    except Refusal:
        raise
    except Exception as e:  # genops: an unknown opcode, an argument cut short, no STOP
        raise Refusal(f"{where} is not a whole pickle ({type(e).__name__}: "
                      f"{short(e.args[0] if len(e.args) == 1 else e.args, 200)})") from None
    return machine.used  # not reached: genops stops at STOP or raises
