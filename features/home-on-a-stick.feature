Feature: A home folder on a USB stick, carried from the college lab to the town library
  Students carry an ordinary FAT32 or exFAT stick with a "pershome" folder on it. On any lab
  client with pershome installed, their home folder is the stick from the first second of the
  session; at logout everything is on the stick and it can be pulled.

  The lab: an LTSP server and two netbooted thin clients, "college" and "library", with pershome
  installed from its Debian package and enabled by the admin, who listed joseph and amina in the
  server's /etc/ltsp/persistent_homes (LTSP hands it to the clients with the users). Students
  log in with their password, which LTSP checks against the server; their usual home is the
  server's, over SSHFS. Every scenario starts from freshly booted clients.

  Scenario: Joseph starts his report at the college and continues it at the library
    Given joseph has a new FAT32 stick
    When joseph prepares the stick at the "college" client
    And joseph logs in at the "college" client and runs:
      """
      printf 'My report\nChapter 1\n' > report.txt
      ln -s report.txt latest
      printf 'only for me\n' > notes.txt && chmod 600 notes.txt
      printf 'draft\n' > 'What? "Draft" <v2>: a|b.txt'
      mkdir -p Projects/Report && printf 'x = 1\n' > Projects/Report/Notes.md
      printf 'other\n' > projects.MD
      """
    Then the session's home was on the stick
    And the layer ran as the systemd unit pershome@joseph.service
    When joseph pulls the stick from the "college" client
    Then the host sees "report.txt" in the stick's "/pershome" folder
    And the stick checks clean
    When joseph plugs the stick into the "library" client
    And joseph logs in at the "library" client and runs:
      """
      cat report.txt; readlink latest; stat -c '%a %U' notes.txt; cat 'What? "Draft" <v2>: a|b.txt'
      cat Projects/Report/Notes.md projects.MD
      """
    Then the session's home was on the stick
    And the output is:
      """
      My report
      Chapter 1
      report.txt
      600 joseph
      draft
      x = 1
      other
      """

  Scenario: A listed user without a stick gets the computer's own home, and is told why
    When joseph logs in at the "college" client and runs:
      """
      printf 'local\n' > local.txt
      """
    Then the session's home was not on a stick
    And the session's home was the LTSP server's, over SSHFS
    And joseph was told "no USB stick with a pershome folder was found"

  Scenario: A stick without a pershome folder: the computer's own home, and how to prepare the stick
    Given joseph has a new exFAT stick
    When joseph plugs the stick into the "library" client
    And joseph logs in at the "library" client and runs:
      """
      printf 'local\n' > local.txt
      """
    Then the session's home was not on a stick
    And joseph was told "has no pershome folder"
    And joseph was told "pershome init"

  Scenario: The stick is pulled in the middle of writing
    Given joseph has a new FAT32 stick with a pershome folder
    When joseph plugs the stick into the "college" client
    And joseph starts a session at the "college" client that saves "thesis.txt", syncs it, then keeps writing "log.txt"
    And joseph pulls the stick from the "college" client while the session writes
    Then joseph's desktop is told "was removed or stopped working while you were logged in" at the "college" client
    And the session at the "college" client ends by itself, and nothing of joseph's stays mounted there
    When joseph plugs the stick into the "library" client
    And joseph logs in at the "library" client and runs:
      """
      cat thesis.txt
      """
    Then the session's home was on the stick
    And the output is:
      """
      chapter 2, saved before the stick was pulled
      """
    When joseph pulls the stick from the "library" client
    Then the stick checks clean after repair

  Scenario: Two students at two clients at once never see each other's files
    Given joseph has a new FAT32 stick with a pershome folder
    And amina has a new exFAT stick with a pershome folder
    When joseph plugs the stick into the "college" client
    And amina plugs the stick into the "library" client
    And at the same time joseph at the "college" client and amina at the "library" client each save a file and list their home
    Then each of them sees only their own file
    And the host sees only joseph's file on joseph's stick and only amina's on amina's

  Scenario: A walk-in student not on the admin's list opts in with a marker in their server home
    Given walkin has a new exFAT stick with a pershome folder
    And walkin has put a ".persistent_home" file in their home on the LTSP server
    When walkin plugs the stick into the "library" client
    And walkin logs in at the "library" client and runs:
      """
      printf 'my own\n' > mine.txt; cat mine.txt
      """
    Then the session's home was on the stick
    And the output is:
      """
      my own
      """
    When walkin pulls the stick from the "library" client
    Then the host sees "mine.txt" in the stick's "/pershome" folder
