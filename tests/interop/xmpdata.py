"""XMP packets the tests write, in the forms digiKam, ExifTool and Windows Photo Gallery use."""

from __future__ import annotations

HEAD = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/" '
        'xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#" xmlns:stDim="http://ns.adobe.com/xap/1.0/sType/Dimensions#" '
        'xmlns:MP="http://ns.microsoft.com/photo/1.2/" xmlns:MPRI="http://ns.microsoft.com/photo/1.2/t/RegionInfo#" '
        'xmlns:MPReg="http://ns.microsoft.com/photo/1.2/t/Region#" xmlns:digiKam="http://www.digikam.org/ns/1.0/" '
        'xmlns:lr="http://ns.adobe.com/lightroom/1.0/" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/">')
TAIL = "</rdf:Description></rdf:RDF></x:xmpmeta>"


def mwg(regions, applied=None, as_elements=False) -> str:
    """regions: (name, type, cx, cy, w, h) centre-based normalised areas."""
    items = []
    for name, kind, x, y, w, h in regions:
        if as_elements:  # ExifTool's element form
            items.append(f'<rdf:li rdf:parseType="Resource"><mwg-rs:Name>{name}</mwg-rs:Name>'
                         f'<mwg-rs:Type>{kind}</mwg-rs:Type><mwg-rs:Area rdf:parseType="Resource">'
                         f'<stArea:x>{x}</stArea:x><stArea:y>{y}</stArea:y><stArea:w>{w}</stArea:w>'
                         f'<stArea:h>{h}</stArea:h><stArea:unit>normalized</stArea:unit></mwg-rs:Area></rdf:li>')
        else:  # Exiv2's (digiKam) attribute form
            items.append(f'<rdf:li><rdf:Description mwg-rs:Name="{name}" mwg-rs:Type="{kind}"><mwg-rs:Area '
                         f'stArea:x="{x}" stArea:y="{y}" stArea:w="{w}" stArea:h="{h}" stArea:unit="normalized"/>'
                         f'</rdf:Description></rdf:li>')
    dims = (f'<mwg-rs:AppliedToDimensions stDim:w="{applied[0]}" stDim:h="{applied[1]}" stDim:unit="pixel"/>'
            if applied else "")
    return (f'<mwg-rs:Regions rdf:parseType="Resource">{dims}<mwg-rs:RegionList><rdf:Bag>{"".join(items)}'
            '</rdf:Bag></mwg-rs:RegionList></mwg-rs:Regions>')


def mp(regions) -> str:
    """regions: (name, x, y, w, h) top-left based."""
    items = "".join(f'<rdf:li MPReg:PersonDisplayName="{n}" MPReg:Rectangle="{x}, {y}, {w}, {h}"/>'
                    for n, x, y, w, h in regions)
    return f'<MP:RegionInfo rdf:parseType="Resource"><MPRI:Regions><rdf:Bag>{items}</rdf:Bag></MPRI:Regions></MP:RegionInfo>'


def tags(digikam=(), lightroom=(), persons=()) -> str:
    out = ""
    if digikam:
        out += "<digiKam:TagsList><rdf:Seq>" + "".join(f"<rdf:li>{t}</rdf:li>" for t in digikam) + \
               "</rdf:Seq></digiKam:TagsList>"
    if lightroom:
        out += "<lr:hierarchicalSubject><rdf:Bag>" + "".join(f"<rdf:li>{t}</rdf:li>" for t in lightroom) + \
               "</rdf:Bag></lr:hierarchicalSubject>"
    if persons:
        out += "<Iptc4xmpExt:PersonInImage><rdf:Bag>" + "".join(f"<rdf:li>{t}</rdf:li>" for t in persons) + \
               "</rdf:Bag></Iptc4xmpExt:PersonInImage>"
    return out


def packet(*parts: str) -> str:
    return HEAD + "".join(parts) + TAIL
