"""Import a PXELINUX/ISOLINUX config in the common format into the menu model.

Understood: UI, DEFAULT, TIMEOUT, SERIAL, MENU TITLE, MENU LABEL, MENU DEFAULT, LABEL,
KERNEL/LINUX, INITRD, APPEND (its `initrd=a,b`), LOCALBOOT, INCLUDE / MENU INCLUDE (relative
to the TFTP root, as PXELINUX resolves them), MENU BEGIN/END (submenus are flattened, their
title kept in the label). Presentation-only directives (MENU COLOR, F1..., DISPLAY, ...) are
listed as ignored; anything that changes what boots and cannot be represented is a problem.
Both carry the file and line number.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pxetui.menus.model import LOCAL_ID, Entry, Menu, local_entry

MAX_INCLUDE_DEPTH = 16
# Understood, but only change how the menu looks or behaves at the prompt.
_PRESENTATION = {
    "say": "message text", "display": "message file", "prompt": "boot prompt",
    "noescape": "prompt keys", "nocomplete": "prompt completion", "allowoptions": "prompt editing",
    "console": "console output", "font": "console font", "kbdmap": "keyboard map",
    "path": "module search path (pxetui serves the modules at the root)",
    "totaltimeout": "total timeout", "ontimeout": "timeout action", "onerror": "error action",
    "implicit": "implicit kernels", "ipappend": "IP on the command line",
    "sysappend": "system data on the command line",
    **{f"f{i}": "help screen" for i in range(1, 13)},
}
_MENU_PRESENTATION = {
    "color", "background", "width", "margin", "passwordmargin", "rows", "tabmsgrow",
    "cmdlinerow", "endrow", "passwordrow", "timeoutrow", "helpmsgrow", "helpmsgendrow",
    "hiddenrow", "hshift", "vshift", "msgcolor", "tabmsg", "autoboot", "notabmsg",
    "separator", "hide", "shiftkey", "save", "nosave", "resolution", "immediate", "clear",
    "masterpassword", "passprompt", "vesa",
}


@dataclass
class Problem:
    file: str
    line: int
    text: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}: {self.text.strip()}"


@dataclass
class Parsed:
    menu: Menu
    problems: list[Problem] = field(default_factory=list)  # what could not be imported
    ignored: list[Problem] = field(default_factory=list)  # understood, presentation only
    ui: str | None = None


@dataclass
class _Label:
    name: str
    file: str
    line: int
    submenu: str = ""
    menu_label: str = ""
    kernel: str = ""
    kernel_kw: str = ""
    kernel_line: int = 0
    initrd: str = ""
    append: str = ""
    localboot: bool = False
    exit_menu: bool = False
    config: str = ""
    is_default: bool = False


class _Parser:
    def __init__(self, include: Callable[[str], str | None]) -> None:
        self.include = include
        self.out = Parsed(menu=Menu(entries=[]))
        self.labels: list[_Label] = []
        self.default: str | None = None
        self.submenus: list[str] = []
        self.stack: list[str] = []
        self.title_set = False

    def problem(self, file: str, n: int, text: str, reason: str) -> None:
        self.out.problems.append(Problem(file, n, text, reason))

    def ignore(self, file: str, n: int, text: str, reason: str) -> None:
        self.out.ignored.append(Problem(file, n, text, reason))

    def parse(self, text: str, file: str, depth: int = 0) -> None:
        cur: _Label | None = None
        in_text = False
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if in_text:
                if line.lower() == "endtext":
                    in_text = False
                continue
            if not line or line.startswith("#"):
                continue
            word, _, rest = line.partition(" ")
            if "\t" in word:
                word, _, tail = word.partition("\t")
                rest = f"{tail} {rest}".strip()
            kw, rest = word.lower(), rest.strip()
            if kw == "menu":
                sub, _, arg = rest.partition(" ")
                sub, arg = sub.lower(), arg.strip()
                cur = self.menu_directive(sub, arg, cur, file, n, raw, depth)
                continue
            if kw == "text":
                in_text = True  # TEXT HELP ... ENDTEXT: help shown under the entry
                self.ignore(file, n, raw, "help text (not shown by pxetui's menus)")
                continue
            if kw == "label":
                cur = _Label(rest, file, n, submenu=" > ".join(self.stack))
                self.labels.append(cur)
            elif kw in ("kernel", "linux"):
                if cur is None:
                    self.problem(file, n, raw, f"{kw.upper()} outside a LABEL")
                else:
                    cur.kernel, cur.kernel_kw, cur.kernel_line = rest, kw, n
            elif kw == "initrd":
                if cur is None:
                    self.problem(file, n, raw, "INITRD outside a LABEL")
                else:
                    cur.initrd = rest
            elif kw == "append":
                if cur is None:
                    self.ignore(file, n, raw, "global APPEND (added to every entry) not imported")
                else:
                    cur.append = "" if rest == "-" else rest
            elif kw == "localboot":
                if cur is None:
                    self.problem(file, n, raw, "LOCALBOOT outside a LABEL")
                else:
                    cur.localboot = True
            elif kw == "config":
                if cur is None:
                    self.problem(file, n, raw, "CONFIG outside a LABEL (switches to another config)")
                else:
                    cur.config = rest
            elif kw == "include":
                self.do_include(rest.split()[0] if rest else "", file, n, raw, depth)
            elif kw == "default":
                if self.stack:
                    self.ignore(file, n, raw, "DEFAULT inside a submenu (the top menu's default wins)")
                else:
                    self.set_default(rest, file, n, raw)
            elif kw == "ui":
                self.out.ui = rest
            elif kw == "timeout":
                self.set_timeout(rest, file, n, raw)
            elif kw == "serial":
                parts = rest.split()
                if parts and parts[0].isdigit():
                    self.out.menu.serial = " ".join(parts[:2])
                else:
                    self.problem(file, n, raw, "SERIAL needs a port number")
            elif kw in _PRESENTATION:
                self.ignore(file, n, raw, f"{kw.upper()} ({_PRESENTATION[kw]}) not imported")
            else:
                self.problem(file, n, raw, f"unknown directive {word!r}")

    def menu_directive(self, sub: str, arg: str, cur: _Label | None, file: str, n: int,
                       raw: str, depth: int) -> _Label | None:
        arg = _printable(arg)
        if sub == "title":
            if not self.stack and not self.title_set:
                self.out.menu.title, self.title_set = arg, True
        elif sub == "label":
            if cur is not None:
                cur.menu_label = arg
            elif self.stack:
                self.stack[-1] = arg  # the label of a MENU BEGIN block names the submenu
            else:
                self.problem(file, n, raw, "MENU LABEL outside a LABEL")
        elif sub == "default":
            if cur is not None and not self.stack:
                cur.is_default = True  # a submenu's own default does not change the top menu
        elif sub == "include":
            self.do_include(arg.split()[0] if arg else "", file, n, raw, depth)
        elif sub == "begin":
            self.stack.append(arg or "submenu")
            return None
        elif sub == "end":
            if self.stack:
                self.stack.pop()
            else:
                self.problem(file, n, raw, "MENU END without MENU BEGIN")
            return None
        elif sub in ("exit", "quit"):
            if cur is not None:
                cur.exit_menu = True
        elif sub in _MENU_PRESENTATION:
            self.ignore(file, n, raw, f"MENU {sub.upper()} is presentation only")
        else:
            self.problem(file, n, raw, f"unknown MENU directive {sub!r}")
        return cur

    def do_include(self, name: str, file: str, n: int, raw: str, depth: int) -> None:
        if not name:
            self.problem(file, n, raw, "INCLUDE without a file name")
            return
        if depth >= MAX_INCLUDE_DEPTH:
            self.problem(file, n, raw, f"INCLUDE nested deeper than {MAX_INCLUDE_DEPTH} (a loop?)")
            return
        text = self.include(name)
        if text is None:
            # PXELINUX skips a missing include silently; say so, since entries may be missing.
            self.problem(file, n, raw, f"included file {name} not found")
            return
        self.parse(text, name, depth + 1)

    def set_default(self, rest: str, file: str, n: int, raw: str) -> None:
        target = rest.split()[0] if rest else ""
        if target.lower().endswith(".c32"):
            self.out.ui = target  # `DEFAULT vesamenu.c32`: the old way to name the menu UI
        elif target:
            self.default = target
        else:
            self.problem(file, n, raw, "DEFAULT without a label")

    def set_timeout(self, rest: str, file: str, n: int, raw: str) -> None:
        try:
            tenths = int(rest.split()[0])
        except (ValueError, IndexError):
            self.problem(file, n, raw, "TIMEOUT is not a number (tenths of a second)")
            return
        self.out.menu.timeout = math.ceil(max(tenths, 0) / 10)  # PXELINUX counts 1/10 s

    # -- labels to entries -----------------------------------------------------------------
    def finish(self) -> Parsed:
        menu = self.out.menu
        default_id: str | None = None
        names: dict[str, str] = {}
        for lab in self.labels:
            entry = self.entry(lab)
            if entry is None:
                continue
            entry.id = menu.unique_id(lab.name or "entry")
            names.setdefault(lab.name, entry.id)
            menu.entries.append(entry)
            if lab.is_default and default_id is None:
                default_id = entry.id
        if self.stack:
            self.problem("(end)", 0, "", f"MENU BEGIN {self.stack[-1]!r} never ended")
        if not any(e.kind == "local" for e in menu.entries):
            local = local_entry()
            local.id = menu.unique_id(LOCAL_ID)  # a config's own LABEL local keeps its name
            menu.entries.append(local)
        if default_id is None and self.default is not None:
            default_id = names.get(self.default)
            if default_id is None:
                self.problem("(default)", 0, self.default, f"DEFAULT names no imported label {self.default!r}")
        # menu.c32 highlights the first entry when nothing names a default.
        menu.default = default_id or menu.entries[0].id
        return self.out

    def entry(self, lab: _Label) -> Entry | None:
        label = lab.menu_label.replace("^", "") or lab.name
        if lab.submenu:
            label = f"{lab.submenu.replace('^', '')} > {label}"
        where = (lab.file, lab.line, f"LABEL {lab.name}")
        if lab.exit_menu:
            self.ignore(*where, "MENU EXIT entry (returns to the parent menu): not needed")
            return None
        if lab.localboot:
            return Entry(id=lab.name, label=label, kind="local", archs=["bios"])
        if lab.config:
            self.problem(*where, f"switches to another config ({lab.config}): not imported")
            return None
        if not lab.kernel:
            self.problem(*where, "label has no KERNEL/LINUX")
            return None
        kernel = lab.kernel.split()[0]
        args = " ".join(lab.kernel.split()[1:] + ([lab.append] if lab.append else []))
        initrds = [i for i in lab.initrd.split(",") if i] if lab.initrd else []
        kept = []
        for tok in args.split():
            if tok.startswith("initrd="):
                initrds += [i for i in tok[len("initrd="):].split(",") if i]
            else:
                kept.append(tok)
        low = kernel.lower()
        where = (lab.file, lab.kernel_line or lab.line, f"LABEL {lab.name}")
        if lab.kernel_kw == "kernel" and low.endswith(".c32"):
            self.problem(*where, f"runs the module {kernel}, not a kernel: not imported")
            return None
        if lab.kernel_kw == "kernel" and low.endswith((".0", ".bs", ".bss", ".com", ".cbt")):
            self.problem(*where, f"chains {kernel} (PXE/boot sector image): not imported")
            return None
        if os.path.basename(low) == "memdisk" and initrds:
            # memdisk + an image: the model's whole-image entry (memdisk/sanboot).
            return Entry(id=lab.name, label=label, kind="iso", kernel=initrds[0], archs=["bios"])
        return Entry(id=lab.name, label=label, kind="linux", kernel=kernel, initrds=initrds,
                     args=" ".join(kept), archs=["bios", "uefi64"])


def _printable(text: str) -> str:
    """Menu text without control characters (d-i titles start with ^G, a beep for speech)."""
    return "".join(ch for ch in text if ch >= " " and ch != "\x7f").strip()


def parse_text(text: str, filename: str = "pxelinux.cfg/default",
               include: Callable[[str], str | None] | None = None) -> Parsed:
    p = _Parser(include or (lambda name: None))
    p.parse(text, filename)
    return p.finish()


def parse_file(path: str | Path, root: str | Path | None = None) -> Parsed:
    """Parse a config file; INCLUDE paths are resolved under `root` (the TFTP root: by default
    the directory holding `pxelinux.cfg/`, else the file's own directory)."""
    p = Path(path)
    text = p.read_text(encoding="utf-8", errors="replace")
    if root is None:
        root = p.parent.parent if p.parent.name == "pxelinux.cfg" else p.parent
    base = Path(root).resolve()

    def include(name: str) -> str | None:
        cand = (base / name.lstrip("/")).resolve()
        if base not in cand.parents and cand != base:
            return None  # confined to the root, like the TFTP server
        try:
            return cand.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    return parse_text(text, str(p), include)
