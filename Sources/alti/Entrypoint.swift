import AltiCLI
@main struct Entrypoint { static func main() async { await AltiCommand.main() } }
