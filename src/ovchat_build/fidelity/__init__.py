"""The fidelity gate: the criteria a faithful IR meets, the source's side (torch) and the IR's side
(OpenVINO) measured on one eval set, and the gate that refuses a build below the bar."""
