"""Per-object-type property and group registries (what ``/crm/v3/properties`` serves)."""

from __future__ import annotations

from sandbox.hubspot.errors import conflict, not_found, validation
from sandbox.hubspot.schema import GroupDef, ObjectType, PropertyDef, group_label


class PropertyRegistry:
    """Property definitions and groups of one object type, in creation order."""

    def __init__(self, ot: ObjectType, props: list[PropertyDef]) -> None:
        self.object_type = ot
        self._props: dict[str, PropertyDef] = {p.name: p for p in props}
        self._groups: dict[str, GroupDef] = {}
        for i, p in enumerate(props):
            if p.group_name and p.group_name not in self._groups:
                self._groups[p.group_name] = GroupDef(p.group_name, group_label(p.group_name), i)

    # -- properties ----------------------------------------------------------------------------
    def get(self, name: str) -> PropertyDef | None:
        p = self._props.get(name)
        return p if p is not None and not p.archived else None

    def require(self, name: str) -> PropertyDef:
        p = self.get(name)
        if p is None:
            raise not_found(
                f"Unable to find property with name {name} for object type "
                f"{self.object_type.type_id}",
                context={"propertyName": [name]},
            )
        return p

    def all(self, archived: bool = False) -> list[PropertyDef]:
        return [p for p in self._props.values() if p.archived == archived]

    def names(self) -> set[str]:
        return {p.name for p in self._props.values() if not p.archived}

    def add(self, p: PropertyDef) -> PropertyDef:
        existing = self._props.get(p.name)
        if existing is not None and not existing.archived:
            raise conflict(
                f"A property named '{p.name}' already exists.",
                context={"name": [p.name]},
                sub_category="PropertyValidationError.PROPERTY_ALREADY_EXISTS",
            )
        if p.group_name not in self._groups or self._groups[p.group_name].archived:
            raise validation(
                f"Property group {p.group_name} does not exist.",
                context={"groupName": [p.group_name]},
            )
        self._props[p.name] = p
        return p

    def archive(self, name: str) -> None:
        p = self.require(name)
        if p.hubspot_defined:
            raise validation(
                f"Can't delete HubSpot-defined property {name}", context={"propertyName": [name]}
            )
        p.archived = True

    # -- groups --------------------------------------------------------------------------------
    def group(self, name: str) -> GroupDef:
        g = self._groups.get(name)
        if g is None or g.archived:
            raise not_found(f"Unable to find property group {name}", context={"groupName": [name]})
        return g

    def groups(self) -> list[GroupDef]:
        return [g for g in self._groups.values() if not g.archived]

    def add_group(self, g: GroupDef) -> GroupDef:
        existing = self._groups.get(g.name)
        if existing is not None and not existing.archived:
            raise conflict(f"A property group named '{g.name}' already exists.")
        self._groups[g.name] = g
        return g

    def archive_group(self, name: str) -> None:
        g = self.group(name)
        if any(p.group_name == name and not p.archived for p in self._props.values()):
            raise validation(f"Property group {name} still contains properties.")
        g.archived = True
