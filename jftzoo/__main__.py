from jftzoo.cli import main

main()
