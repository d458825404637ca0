@_exported import FerryPush
