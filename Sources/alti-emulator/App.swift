import AltiEmulator
@main struct EmulatorEntrypoint { static func main() async {} }
