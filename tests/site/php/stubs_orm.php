<?php
/*
 * Stand-ins of Bitrix classes for the module's queue table, installer steps and backfill
 * (Bitrix\Main\ORM\Data\DataManager, the admin step pages, CLI). Loaded after stubs.php.
 */
