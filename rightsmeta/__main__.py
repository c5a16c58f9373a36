from .cli_verify import main

main()
