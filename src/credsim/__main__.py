from credsim.cli import main

main()
