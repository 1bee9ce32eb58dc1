"""Channel-space algebra: atoms, their refinements and per-dimension layouts.

Every dimension of every tensor in the traced graph is described by a *layout*: an ordered
concatenation (sum) of *terms*, each term a row-major product of *atoms*. An atom is a set of
channels that are pruned together index by index; atoms live in a union-find so that two
dimensions that must prune the same indices (a residual add, a weight shared by two convs) end
up as the same atom.

Atoms can be *refined* after creation, because an op may reveal that one dimension is really
made of parts:
- ``sum`` refinement: the atom is a concatenation of smaller atoms (a ``split``/``chunk`` of a
  conv output, the q/k/v parts of a fused projection);
- ``product`` refinement: the atom is a row-major product (``view`` of a hidden dimension into
  ``(heads, head_dim)``; a grouped conv's ``(groups, width)``).

Anything the algebra cannot express (a cut through an inner factor, incompatible refinements)
is not guessed: the atoms involved are *frozen* with a reason, which only costs compression.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

Term = tuple["Atom", ...]
Layout = tuple[Term, ...]


class NotRepresentable(Exception):
    """An index map cannot be expressed as a sum of products of atoms."""


@dataclass(eq=False)
class Atom:
    """A union-find element standing for ``size`` channels."""

    id: int
    size: int
    origin: str
    parent: Atom | None = None
    kind: str | None = None  # None (leaf), "sum" or "prod"; meaningful on roots only
    children: tuple[Atom, ...] = ()
    frozen: str | None = None  # reason, on roots only
    rank: int = 0
    members: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Atom#{self.id}({self.size})"


class AtomTable:
    """Creates atoms and implements find / union / refine / freeze over them."""

    def __init__(self) -> None:
        self.atoms: list[Atom] = []

    # -- creation ---------------------------------------------------------------------------
    def new(self, size: int, origin: str, frozen: str | None = None) -> Atom:
        atom = Atom(id=len(self.atoms), size=size, origin=origin, frozen=frozen)
        self.atoms.append(atom)
        return atom

    def fresh_layout(self, size: int, origin: str, frozen: str | None = None) -> Layout:
        return ((self.new(size, origin, frozen),),)

    # -- union-find -------------------------------------------------------------------------
    def find(self, atom: Atom) -> Atom:
        root = atom
        while root.parent is not None:
            root = root.parent
        while atom.parent is not None and atom.parent is not root:
            atom.parent, atom = root, atom.parent
        return root

    def freeze(self, atom: Atom, reason: str) -> None:
        """Freeze an atom and everything it is refined into (first reason wins)."""
        stack = [atom]
        while stack:
            root = self.find(stack.pop())
            if root.frozen is None:
                root.frozen = reason
            stack.extend(root.children)

    def union(self, a: Atom, b: Atom) -> None:
        """Declare that ``a`` and ``b`` index the same channels in the same order."""
        ra, rb = self.find(a), self.find(b)
        if ra is rb:
            return
        if ra.size != rb.size:
            raise NotRepresentable(f"size mismatch {ra.size} != {rb.size}")
        if ra.kind is not None and rb.kind is not None:
            # Both refined: align their structures first, then merge the roots.
            self.unify_layouts(self.expand(ra), self.expand(rb))
            ra, rb = self.find(ra), self.find(rb)
            if ra is rb:
                return
        if ra.kind is None and rb.kind is not None:
            ra, rb = rb, ra  # the refined one becomes the root
        elif ra.kind is None and rb.kind is None and ra.rank < rb.rank:
            ra, rb = rb, ra
        rb.parent = ra
        if ra.rank == rb.rank:
            ra.rank += 1
        reason = ra.frozen or rb.frozen
        if reason is not None:
            self.freeze(ra, reason)

    # -- refinement -------------------------------------------------------------------------
    def refine(self, atom: Atom, kind: str, sizes: list[int]) -> tuple[Atom, ...]:
        """Refine an unrefined root into a sum or a product of new atoms of ``sizes``."""
        root = self.find(atom)
        if root.kind is not None:
            raise NotRepresentable("atom already refined")
        children = tuple(self.new(s, f"{kind} part of {root.origin}", root.frozen) for s in sizes)
        root.kind, root.children = kind, children
        return children

    def expand(self, atom: Atom) -> Layout:
        """The normalised layout of one atom (its refinement tree flattened)."""
        return self.normalize(((atom,),))

    def normalize(self, layout: Layout, opaque: list[Atom] | None = None) -> Layout:
        """Resolve roots and inline refinements; sums must stay outermost in every term.

        With ``opaque`` given, a sum in an inner factor (e.g. the rotary-embedding halves of a
        head dim inside ``heads x head_dim``) is kept as one factor and reported in ``opaque``
        (the caller freezes it) instead of failing.
        """
        out: list[Term] = []
        for term in layout:
            out.extend(self._normalize_term(term, opaque))
        return tuple(out)

    def _normalize_term(self, term: Term, opaque: list[Atom] | None = None) -> list[Term]:
        factors: list[Atom] = []
        stack = [self.find(a) for a in reversed(term)]
        while stack:
            a = self.find(stack.pop())
            if a.kind == "prod":
                stack.extend(reversed(a.children))
            else:
                factors.append(a)
        for i, a in enumerate(factors):
            if a.kind == "sum":
                if i != 0:
                    if opaque is None:
                        raise NotRepresentable("a concatenation inside an inner factor")
                    opaque.append(a)
                    continue
                rest = tuple(factors[1:])
                result: list[Term] = []
                for child in a.children:
                    result.extend(self._normalize_term((child, *rest), opaque))
                return result
        kept = tuple(a for a in factors if a.size != 1)
        return [kept if kept else tuple(factors[:1])]

    # -- alignment --------------------------------------------------------------------------
    def cut(self, layout: Layout, position: int) -> Layout:
        """Refine ``layout`` so that a term boundary falls at ``position``."""
        layout = self.normalize(layout)
        start = 0
        for term in layout:
            size = term_size(term)
            if start < position < start + size:
                head = term[0]
                inner = size // head.size
                offset = position - start
                if offset % inner:
                    raise NotRepresentable("cut inside an inner factor")
                self.refine(head, "sum", [offset // inner, head.size - offset // inner])
                return self.normalize(layout)
            start += size
            if start >= position:
                break
        return layout

    def slice(self, layout: Layout, start: int, stop: int) -> Layout:
        """The sub-layout of positions ``[start, stop)``."""
        layout = self.cut(self.cut(layout, start), stop)
        layout = self.normalize(layout)
        out: list[Term] = []
        position = 0
        for term in layout:
            size = term_size(term)
            if position >= start and position + size <= stop:
                out.append(term)
            position += size
        return tuple(out)

    def unify_layouts(self, a: Layout, b: Layout) -> None:
        """Make two layouts of the same size index identical channels position by position."""
        a, b = self.normalize(a), self.normalize(b)
        if layout_size(a) != layout_size(b):
            raise NotRepresentable(f"size mismatch {layout_size(a)} != {layout_size(b)}")
        for position in _boundaries(a) | _boundaries(b):
            a = self.cut(a, position)
            b = self.cut(b, position)
        a, b = self.normalize(a), self.normalize(b)
        for ta, tb in zip(_split_terms(a), _split_terms(b), strict=True):
            self._unify_terms(ta, tb)

    def _unify_terms(self, a: Term, b: Term) -> None:
        xs, ys = list(a), list(b)
        while xs and ys:
            x, y = self.find(xs.pop(0)), self.find(ys.pop(0))
            if x.kind == "prod" or y.kind == "prod":
                xs[:0] = x.children if x.kind == "prod" else (x,)
                ys[:0] = y.children if y.kind == "prod" else (y,)
                continue
            if x.kind == "sum" or y.kind == "sum":
                raise NotRepresentable("a concatenation inside an inner factor")
            if x.size == y.size:
                self.union(x, y)
            elif x.size > y.size:
                if x.size % y.size or x.kind is not None:
                    raise NotRepresentable("incompatible factorisations")
                outer, inner = self.refine(x, "prod", [y.size, x.size // y.size])
                self.union(outer, y)
                xs.insert(0, inner)
            else:
                if y.size % x.size or y.kind is not None:
                    raise NotRepresentable("incompatible factorisations")
                outer, inner = self.refine(y, "prod", [x.size, y.size // x.size])
                self.union(x, outer)
                ys.insert(0, inner)
        if any(self.find(t).size != 1 for t in xs + ys):
            raise NotRepresentable("terms of different structure")

    def split_term(self, term: Term, inner: int) -> tuple[Term, Term]:
        """Split a term into (outer, inner) row-major digits with ``inner`` positions inside."""
        (factors_term,) = self._normalize_term(term) if term else [()]
        factors = list(factors_term)
        inner_part: list[Atom] = []
        remaining = inner
        while remaining > 1:
            if not factors:
                raise NotRepresentable("inner size larger than the term")
            a = factors.pop()
            if a.size <= remaining:
                if remaining % a.size:
                    raise NotRepresentable("inner size does not divide the term")
                inner_part.insert(0, a)
                remaining //= a.size
            else:
                if a.size % remaining or a.kind is not None:
                    raise NotRepresentable("inner size does not divide the factor")
                outer, low = self.refine(a, "prod", [a.size // remaining, remaining])
                inner_part.insert(0, low)
                factors.append(outer)
                remaining = 1
        return tuple(factors), tuple(inner_part)

    def split_layout(self, layout: Layout, sizes: list[int]) -> list[Layout]:
        """Split one dimension into row-major dimensions of ``sizes`` (a ``view``)."""
        layout = self.normalize(layout)
        if len(sizes) == 1:
            return [layout]
        inner = prod(sizes[1:])
        outers: list[Term] = []
        inners: list[Term] = []
        for term in layout:
            if term_size(term) % inner:
                raise NotRepresentable("a concatenated part is not a whole number of rows")
            outer, low = self.split_term(term, inner)
            outers.append(outer)
            inners.append(low)
        for other in inners[1:]:
            self.unify_layouts((inners[0],), (other,))
        return [tuple(outers), *self.split_layout((inners[0],), sizes[1:])]

    def merge_layouts(self, layouts: list[Layout]) -> Layout:
        """Merge row-major dimensions into one (a ``flatten``); sums may only be outermost."""
        layouts = [self.normalize(layout) for layout in layouts]
        if any(len(layout) > 1 for layout in layouts[1:]):
            raise NotRepresentable("a concatenated dimension merged as an inner factor")
        tail: Term = tuple(atom for layout in layouts[1:] for atom in layout[0])
        return self.normalize(tuple((*term, *tail) for term in layouts[0]))

    def leaves(self, layout: Layout) -> list[Atom]:
        """Every unrefined root under ``layout``, even where the structure is not representable."""
        out: list[Atom] = []
        stack = [atom for term in layout for atom in term]
        while stack:
            root = self.find(stack.pop())
            if root.kind is None:
                out.append(root)
            else:
                stack.extend(root.children)
        return out


def term_size(term: Term) -> int:
    return prod(a.size for a in term)


def layout_size(layout: Layout) -> int:
    return sum(term_size(t) for t in layout)


def _boundaries(layout: Layout) -> set[int]:
    out, position = set(), 0
    for term in layout[:-1]:
        position += term_size(term)
        out.add(position)
    return out


def _split_terms(layout: Layout) -> list[Term]:
    return list(layout)
