#!/usr/bin/env python3
"""Writes the DICOM files scripts/e2e.sh loads into Orthanc, and a manifest of what they hold.

    make-samples.py OUTDIR

OUTDIR receives CT_small.dcm and MR_small.dcm, two real images that ship inside the pydicom
package, and synthetic_ct_01.dcm ... synthetic_ct_24.dcm: a 24-slice CT series made from
CT_small (new patient, study, series and instance UIDs, slices 5 mm apart) so that the Web
Viewer has a stack to show. OUTDIR/manifest.json lists, per file, the patient and the DICOM UIDs
the test expects to find through the gateway. OUTDIR/extra/ holds two more files (and their
manifest.json) that the test uploads through the gateway itself.

Only files inside the installed package are read: pydicom's get_testdata_files() with a pattern
would try to download its extra test data from GitHub (and hang without network), so the
package's own data folder is read directly.
"""
import copy
import json
import os
import sys

import pydicom
from pydicom.uid import generate_uid

SLICES = 24


def entry(path, ds, synthetic):
    return {
        "file": os.path.basename(path),
        "patientName": str(ds.PatientName),
        "patientId": str(ds.PatientID),
        "studyUid": str(ds.StudyInstanceUID),
        "seriesUid": str(ds.SeriesInstanceUID),
        "sopUid": str(ds.SOPInstanceUID),
        "modality": str(ds.Modality),
        "synthetic": synthetic,
    }


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make-samples.py OUTDIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    shipped = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")
    manifest = []

    for name in ("CT_small.dcm", "MR_small.dcm"):
        src = os.path.join(shipped, name)
        if not os.path.isfile(src):
            sys.exit(f"{src} is missing: reinstall pydicom (pip install --force-reinstall 'pydicom>=3,<4')")
        ds = pydicom.dcmread(src)
        dst = os.path.join(out, name)
        with open(src, "rb") as f, open(dst, "wb") as g:
            g.write(f.read())
        manifest.append(entry(dst, ds, False))

    base = pydicom.dcmread(os.path.join(shipped, "CT_small.dcm"))
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    x, y, z = (float(v) for v in base.ImagePositionPatient)
    for i in range(SLICES):
        ds = copy.deepcopy(base)
        ds.PatientName = "E2E^Synthetic Stack"
        ds.PatientID = "VIGIE-E2E-001"
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.FrameOfReferenceUID = frame
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyDescription = "Synthetic CT stack"
        ds.SeriesDescription = f"CT_small x{SLICES}"
        ds.SeriesNumber = 99
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [x, y, z + 5.0 * i]
        ds.SliceLocation = z + 5.0 * i
        dst = os.path.join(out, f"synthetic_ct_{i + 1:02d}.dcm")
        ds.save_as(dst, enforce_file_format=True)
        manifest.append(entry(dst, ds, True))

    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)

    # Two more, not loaded by e2e.sh: the test uploads them through the gateway (REST and STOW-RS),
    # then uses their studies for the deletion attempts that must fail.
    extra_dir = os.path.join(out, "extra")
    os.makedirs(extra_dir, exist_ok=True)
    extra = []
    for i, name in enumerate(("upload_rest.dcm", "upload_stow.dcm")):
        ds = copy.deepcopy(base)
        ds.PatientName = "E2E^Uploaded"
        ds.PatientID = "VIGIE-E2E-002"
        ds.StudyInstanceUID = generate_uid()  # one study each: the test tries to delete them
        ds.SeriesInstanceUID = generate_uid()
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyDescription = "Uploaded through the gateway"
        ds.SeriesNumber = 100 + i
        dst = os.path.join(extra_dir, name)
        ds.save_as(dst, enforce_file_format=True)
        extra.append(entry(dst, ds, False))
    with open(os.path.join(extra_dir, "manifest.json"), "w") as f:
        json.dump(extra, f, indent=1)
    print(f"{len(manifest)} DICOM files in {out}, {len(extra)} more in {extra_dir}")


if __name__ == "__main__":
    main()
