@_exported import FerryMicro
